// Package sim is a simulated upstream: an in-memory implementation of the
// wkteam iPad-protocol API, the mobile-number token API and the app-key API
// that finderbot talks to, faithful to their documents (envelopes, field
// names, string codes for wkteam and int codes for the other two). It is to
// package upstream what net/http/httptest is to net/http: tests start one
// with NewServer, and `finderbot sim` serves one on a port for people to
// try finderbot without a real account.
//
// Every WeChat account starts with the real Finder page of the upstream's
// documentation (19 messages, keyBuff included). The simulator is driven
// from Go or over its control API under /_sim/: inject messages, list what
// was sent, confirm a QR scan, kick an instance offline, expire tokens and
// inject faults. Its clock is a Clock, so tests control token expiry and
// the login long poll. Its state lives in memory, or, with Options.State,
// in a file it resumes from (see OpenState and InjectFile).
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	// DefaultAccount and DefaultPassword log in to /member/login.
	DefaultAccount  = "demo"
	DefaultPassword = "demo"
	// DefaultVerifyCode is the code the simulated phone shows when a login
	// asks for one.
	DefaultVerifyCode = "123456"
	// DefaultSMSCode is the validateNo accepted by /auth/mobile/login.
	DefaultSMSCode = "123456"
	// DefaultMobile is the mobile number shown in examples; any number is
	// accepted with the right SMS code.
	DefaultMobile = "13800138000"
	// DefaultAppKey and DefaultAppSecret log in to /api-cloud/auth/login;
	// they are the pair of the API's own curl example.
	DefaultAppKey    = "1e612bb58ea64aef9a9e794df6290c8c"
	DefaultAppSecret = "20dca3d26a0f47d386e9b86635aec8cb"
	// DefaultLongPoll is how long /getIPadLoginInfo holds a request.
	DefaultLongPoll = 250 * time.Second
	// DefaultPageSize bounds the messages of one /syncFinder page.
	DefaultPageSize = 100
	// DefaultAccessTokenTTL, DefaultRefreshTokenTTL and DefaultAppKeyTokenTTL
	// are the lifetimes of the token API's and the app-key API's tokens.
	DefaultAccessTokenTTL  = 2 * time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultAppKeyTokenTTL  = 24 * time.Hour
)

// Member is a wkteam member (platform) account.
type Member struct {
	Account  string
	Password string
	// Status is sent in data.status: 0 normal, 1 frozen, 2 expired. Only a
	// normal member can log WeChat accounts in.
	Status int
}

// LoginStep is a hurdle a login meets after its QR code is scanned.
type LoginStep string

// Login steps.
const (
	// StepSlider answers /getIPadLoginInfo with a slider captcha URL once;
	// the next call proceeds.
	StepSlider LoginStep = "slider"
	// StepVerifyCode answers /getIPadLoginInfo with a request for the code
	// shown on the phone; the next call must carry Options.VerifyCode.
	StepVerifyCode LoginStep = "verify_code"
)

// Options configures an Upstream. The zero value is a working simulator
// with the default member, real time, and manual scan confirmation.
type Options struct {
	// Clock is the source of time; nil means the wall clock.
	Clock Clock
	// Members are the wkteam member accounts; nil means one, DefaultAccount
	// with DefaultPassword.
	Members []Member
	// AutoConfirm confirms every QR scan as soon as its code is issued, as
	// if a human scanned at once.
	AutoConfirm bool
	// LoginScript lists the steps every new login goes through after its
	// scan; ScriptLogin sets them per instance.
	LoginScript []LoginStep
	// VerifyCode is the code a StepVerifyCode login expects; "" means
	// DefaultVerifyCode.
	VerifyCode string
	// LongPoll is how long /getIPadLoginInfo waits for a scan before it
	// fails; 0 means DefaultLongPoll.
	LongPoll time.Duration
	// PageSize bounds the messages of one /syncFinder page; 0 means
	// DefaultPageSize.
	PageSize int
	// NoSeed starts every WeChat account with no messages instead of the
	// seed page.
	NoSeed bool
	// NoEcho keeps /privateSend replies out of the sender's own message
	// stream. By default they appear there as messages with isSender 1, as
	// the real upstream does.
	NoEcho bool
	// SMSCode is the validateNo /auth/mobile/login accepts; "" means
	// DefaultSMSCode.
	SMSCode string
	// AccessTokenTTL and RefreshTokenTTL are the token API's lifetimes; 0
	// means the defaults.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	// AppKeys maps app keys to secrets; nil means DefaultAppKey with
	// DefaultAppSecret.
	AppKeys map[string]string
	// AppKeyTokenTTL is the app-key token's lifetime; 0 means one day.
	AppKeyTokenTTL time.Duration
	// Logger receives one line per login, send and control action; nil
	// discards them.
	Logger *slog.Logger
	// State, when set, is the file the simulator starts from and saves
	// every change to (see OpenState); nil keeps everything in memory.
	State *State
}

// Upstream is the simulated upstream. It is an http.Handler; use NewServer
// for a running server. All methods are safe for concurrent use.
type Upstream struct {
	opts   Options
	clock  Clock
	log    *slog.Logger
	mux    *http.ServeMux
	done   chan struct{}
	closed sync.Once

	mu        sync.RWMutex
	members   map[string]*member   // by account
	tokens    map[string]*member   // by member token
	instances map[string]*instance // by wId
	accounts  map[string]*account  // by wcId
	script    []LoginStep

	sentMu     sync.Mutex
	sent       []Sent
	sentSignal chan struct{}

	faults  atomic.Pointer[[]*activeFault]
	faultMu sync.Mutex
	faultID int

	nextWcID atomic.Int64
	nextID   atomic.Uint64

	mobile *mobileAPI
	appkey *appKeyAPI
}

var _ http.Handler = (*Upstream)(nil)

// New returns a simulator configured by opts. It starts no goroutine.
func New(opts Options) *Upstream {
	if opts.Clock == nil {
		opts.Clock = RealClock()
	}
	if opts.Members == nil {
		opts.Members = []Member{{Account: DefaultAccount, Password: DefaultPassword}}
	}
	if opts.VerifyCode == "" {
		opts.VerifyCode = DefaultVerifyCode
	}
	if opts.LongPoll <= 0 {
		opts.LongPoll = DefaultLongPoll
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.SMSCode == "" {
		opts.SMSCode = DefaultSMSCode
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if opts.AppKeys == nil {
		opts.AppKeys = map[string]string{DefaultAppKey: DefaultAppSecret}
	}
	if opts.AppKeyTokenTTL <= 0 {
		opts.AppKeyTokenTTL = DefaultAppKeyTokenTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	u := &Upstream{
		opts:       opts,
		clock:      opts.Clock,
		log:        opts.Logger,
		done:       make(chan struct{}),
		members:    make(map[string]*member),
		tokens:     make(map[string]*member),
		instances:  make(map[string]*instance),
		accounts:   make(map[string]*account),
		script:     append([]LoginStep(nil), opts.LoginScript...),
		sentSignal: make(chan struct{}),
	}
	for _, m := range opts.Members {
		u.members[m.Account] = &member{Member: m}
	}
	// Message ids start at a random point above 2^60 so that they exceed
	// 2^53, as real ones do, and differ between runs.
	u.nextID.Store(1<<60 + randUint64()%(1<<59))
	u.mobile = newMobileAPI(u)
	u.appkey = newAppKeyAPI(u)
	if opts.State != nil && opts.State.snap != nil {
		u.restore(opts.State.snap)
	}
	u.routes()
	return u
}

// Close releases every request parked in a long poll. The Upstream keeps
// answering other requests.
func (u *Upstream) Close() {
	u.closed.Do(func() { close(u.done) })
}

// Clock returns the simulator's clock.
func (u *Upstream) Clock() Clock { return u.clock }

// ServeHTTP serves the three APIs and the control API.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mux.ServeHTTP(w, r)
}

// Serve serves the simulator on ln until ctx is done, then shuts down
// gracefully (long polls are released at once).
func (u *Upstream) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(u.log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sim: serve: %w", err)
	case <-ctx.Done():
	}
	u.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("sim: shutdown: %w", err)
	}
	return nil
}

// Server is an Upstream serving on a loopback port, for tests.
type Server struct {
	*Upstream
	// URL is the base URL, for example "http://127.0.0.1:43125", to pass to
	// upstream.New.
	URL    string
	cancel context.CancelFunc
	served chan struct{}
}

// NewServer starts a simulator on a free loopback port. Like
// httptest.NewServer it panics if it cannot listen. Call Close when done.
func NewServer(opts Options) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("sim: listen on a loopback port: %v", err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Upstream: New(opts), URL: "http://" + ln.Addr().String(), cancel: cancel, served: make(chan struct{})}
	go func() {
		defer close(s.served)
		_ = s.Upstream.Serve(ctx, ln)
	}()
	return s
}

// Close stops the server and waits until it has stopped.
func (s *Server) Close() {
	s.cancel()
	<-s.served
}

// Run listens on addr, prints how to use the simulator to out, and serves
// until ctx is done. It is `finderbot sim`. With opts.State, its URL is
// recorded for InjectFile to find.
func Run(ctx context.Context, addr string, opts Options, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if opts.State != nil {
		if err := opts.State.SetURL("http://" + ln.Addr().String()); err != nil {
			ln.Close()
			return err
		}
	}
	u := New(opts)
	fmt.Fprint(out, u.Banner("http://"+ln.Addr().String()))
	return u.Serve(ctx, ln)
}

// Banner returns a short guide to the simulator served at baseURL: the
// default accounts and a first request to try.
func (u *Upstream) Banner(baseURL string) string {
	confirm := "scans are confirmed with POST /_sim/confirm"
	if u.opts.AutoConfirm {
		confirm = "QR scans are confirmed automatically"
	}
	return fmt.Sprintf(`finderbot simulated upstream listening on %[1]s
  wkteam member:  account %[2]q, password %[3]q (%[4]s)
  mobile login:   any mobile, validateNo %[5]q
  app-key login:  appKey %[6]q, appSecret %[7]q
  control API:    %[1]s/_sim/
  try:  curl -s %[1]s/member/login -H 'Content-Type: application/json' -d '{"account":%[2]q,"password":%[3]q}'
`, baseURL, firstAccount(u.opts.Members).Account, firstAccount(u.opts.Members).Password, confirm, u.opts.SMSCode, firstKey(u.opts.AppKeys), u.opts.AppKeys[firstKey(u.opts.AppKeys)])
}

func firstAccount(ms []Member) Member {
	if len(ms) == 0 {
		return Member{}
	}
	return ms[0]
}

func firstKey(m map[string]string) string {
	if _, ok := m[DefaultAppKey]; ok {
		return DefaultAppKey
	}
	best := ""
	for k := range m {
		if best == "" || k < best {
			best = k
		}
	}
	return best
}

// errUnknown is returned by Go API calls naming an instance or account the
// simulator does not know.
var errUnknown = errors.New("unknown")

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newWID returns an instance id shaped like the upstream's,
// "0000016e-63eb-f319-0001-ed01076abf1f".
func newWID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
