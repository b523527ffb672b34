package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// stateVersion is the version of the state file's layout.
const stateVersion = 1

// ErrStateInUse is wrapped by the error of OpenState when another process
// serves the simulator of the state file.
var ErrStateInUse = errors.New("in use by another process")

// State is the file a simulator keeps its state in, so that it outlives
// the process serving it: member tokens, instances (wId, wcId, state,
// keyBuff), WeChat accounts and their message streams, the ids handed out
// so far and what was sent. With it, a daemon restarted against the same
// simulator finds its instance online and its cursor still valid, as it
// would with the real upstream.
//
// The file is replaced atomically (written aside, synced, renamed) after
// every change and before the request that made it is answered. While a
// State is open, the lock file next to it (the path plus ".lock") is held,
// and names the URL its simulator serves on once SetURL is called, for
// other processes to reach it (see InjectFile).
type State struct {
	path string
	lock *os.File
	snap *snapshot // what the file held when opened; nil for a new file

	mu sync.Mutex // serialises saves, so that an older state never replaces a newer one
}

// OpenState opens the simulator state file at path, creating nothing
// until the first save. It fails with an error naming the file when the
// file is damaged, and with one wrapping ErrStateInUse when another
// process holds it. Close releases it.
func OpenState(path string) (*State, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sim: state: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("sim: state %s: %w", path, ErrStateInUse)
		}
		return nil, fmt.Errorf("sim: lock the state %s: %w", path, err)
	}
	s := &State{path: path, lock: lock}
	if s.snap, err = readSnapshot(path); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Path returns the state file's path.
func (s *State) Path() string { return s.path }

// SetURL records in the lock file the URL the simulator serves on, for
// other processes to reach it while this one holds the state.
func (s *State) SetURL(url string) error {
	if err := s.lock.Truncate(0); err != nil {
		return fmt.Errorf("sim: state: %w", err)
	}
	if _, err := s.lock.WriteAt([]byte(url+"\n"), 0); err != nil {
		return fmt.Errorf("sim: state: %w", err)
	}
	return nil
}

// Close releases the state file. The simulator using it must not change
// any more: later changes are not saved.
func (s *State) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	// The URL goes first, so that nobody finds a stale one once the lock
	// is free.
	_ = s.lock.Truncate(0)
	err := s.lock.Close()
	s.lock = nil
	return err
}

// snapshot is the state file's content: the wkteam API's state, then the
// token and app-key APIs'.
type snapshot struct {
	Version   int            `json:"version"`
	Members   []snapMember   `json:"members"`
	Instances []snapInstance `json:"instances"`
	Accounts  []snapAccount  `json:"accounts"`
	NextWcID  int64          `json:"nextWcId"`
	NextID    uint64         `json:"nextId,string"`
	Sent      []Sent         `json:"sent"`
	snapLogins
}

type snapMember struct {
	Account  string `json:"account"`
	Password string `json:"password"`
	Status   int    `json:"status"`
	Token    string `json:"token,omitempty"`
	Expired  bool   `json:"expired,omitempty"`
}

type snapInstance struct {
	WID        string    `json:"wId"`
	Member     string    `json:"member"`
	DeviceType string    `json:"deviceType,omitempty"`
	Created    time.Time `json:"created"`
	State      string    `json:"state"`
	WcID       string    `json:"wcId,omitempty"`
	Confirmed  bool      `json:"confirmed,omitempty"`
	ScanAs     string    `json:"scanAs,omitempty"`
	KeyBuff    string    `json:"keyBuff,omitempty"`
}

type snapAccount struct {
	WcID     string        `json:"wcId"`
	Owner    string        `json:"owner,omitempty"`
	Current  string        `json:"current,omitempty"`
	LastSeq  int64         `json:"lastSeq"`
	Messages []snapMessage `json:"messages"`
}

// snapMessage is a message of a stream, kept as the /syncFinder item it is
// served as.
type snapMessage struct {
	Seq  int64           `json:"seq"`
	ID   uint64          `json:"id,string"`
	Item json.RawMessage `json:"item"`
}

// readSnapshot reads and checks the state file; a missing file is a new
// simulator (nil).
func readSnapshot(path string) (*snapshot, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sim: state: %w", err)
	}
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("sim: the simulator state %s is damaged: %s; move it aside to start over (the simulated accounts then need a new QR scan)",
			path, fmt.Sprintf(format, args...))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, damaged("the file is empty (%d bytes)", len(data))
	}
	var snap snapshot
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snap); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, damaged("invalid JSON at line %d: %v", lineAt(data, syn.Offset), err)
		case errors.As(err, &typ):
			return nil, damaged("line %d: %s holds a JSON %s", lineAt(data, typ.Offset), typ.Field, typ.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, damaged("it was cut short")
		}
		return nil, damaged("%v", err)
	}
	if dec.More() {
		return nil, damaged("data after the end of the state")
	}
	if problem := snap.check(); problem != "" {
		return nil, damaged("%s", problem)
	}
	return &snap, nil
}

// lineAt returns the line of data that offset falls on, from 1.
func lineAt(data []byte, offset int64) int {
	offset = min(max(offset, 0), int64(len(data)))
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// check returns what makes the snapshot inconsistent, or "".
func (s *snapshot) check() string {
	if s.Version != stateVersion {
		return fmt.Sprintf("version %d, want %d", s.Version, stateVersion)
	}
	members := map[string]bool{}
	for i, m := range s.Members {
		if m.Account == "" || members[m.Account] {
			return fmt.Sprintf("members[%d]: account %q is empty or repeated", i, m.Account)
		}
		members[m.Account] = true
	}
	accounts := map[string]bool{}
	for i, a := range s.Accounts {
		if a.WcID == "" || accounts[a.WcID] {
			return fmt.Sprintf("accounts[%d]: wcId %q is empty or repeated", i, a.WcID)
		}
		accounts[a.WcID] = true
	}
	instances := map[string]bool{}
	for i, in := range s.Instances {
		switch {
		case in.WID == "" || instances[in.WID]:
			return fmt.Sprintf("instances[%d]: wId %q is empty or repeated", i, in.WID)
		case !members[in.Member]:
			return fmt.Sprintf("instances[%d] (wId %s): member %q is not among the members", i, in.WID, in.Member)
		case !slices.Contains([]string{"pending", "online", "offline"}, in.State):
			return fmt.Sprintf("instances[%d] (wId %s): state %q: want pending, online or offline", i, in.WID, in.State)
		case in.State == "online" && !accounts[in.WcID]:
			return fmt.Sprintf("instances[%d] (wId %s): online as wcId %q, which is not among the accounts", i, in.WID, in.WcID)
		}
		instances[in.WID] = true
	}
	if problem := s.snapLogins.check(); problem != "" {
		return problem
	}
	for i, a := range s.Accounts {
		switch {
		case a.Owner != "" && !members[a.Owner]:
			return fmt.Sprintf("accounts[%d] (wcId %s): owner %q is not among the members", i, a.WcID, a.Owner)
		case a.Current != "" && !instances[a.Current]:
			return fmt.Sprintf("accounts[%d] (wcId %s): current wId %q is not among the instances", i, a.WcID, a.Current)
		}
		var prev int64
		for j, m := range a.Messages {
			if m.Seq <= prev || m.Seq > a.LastSeq {
				return fmt.Sprintf("accounts[%d] (wcId %s): messages[%d]: seq %d out of order (after %d, lastSeq %d)", i, a.WcID, j, m.Seq, prev, a.LastSeq)
			}
			if len(m.Item) == 0 || m.Item[0] != '{' {
				return fmt.Sprintf("accounts[%d] (wcId %s): messages[%d]: the item is not a JSON object", i, a.WcID, j)
			}
			prev = m.Seq
		}
	}
	return ""
}

// restore loads a snapshot into a new Upstream.
func (u *Upstream) restore(s *snapshot) {
	for _, sm := range s.Members {
		m := u.members[sm.Account]
		if m == nil {
			m = &member{Member: Member{Account: sm.Account, Password: sm.Password, Status: sm.Status}}
			u.members[sm.Account] = m
		}
		// Options decide the password and the status; the token is the
		// state, so that a client that kept it is not refused.
		m.token, m.expired = sm.Token, sm.Expired
		if m.token != "" {
			u.tokens[m.token] = m
		}
	}
	for _, sa := range s.Accounts {
		a := newAccount(sa.WcID)
		a.owner = u.members[sa.Owner]
		a.current = sa.Current
		a.lastSeq = sa.LastSeq
		a.msgs = make([]*stored, len(sa.Messages))
		for i, m := range sa.Messages {
			a.msgs[i] = &stored{seq: m.Seq, id: m.ID, item: []byte(m.Item)}
		}
		u.accounts[a.wcID] = a
	}
	for _, si := range s.Instances {
		in := &instance{wID: si.WID, owner: u.members[si.Member], deviceType: si.DeviceType, created: si.Created,
			wcID: si.WcID, isConfirmed: si.Confirmed, scanAs: si.ScanAs, keyBuff: si.KeyBuff, confirmed: make(chan struct{})}
		switch si.State {
		case "online":
			in.state, in.acct = stateOnline, u.accounts[si.WcID]
		case "pending":
			in.state = statePending
		default:
			in.state = stateOffline
		}
		if in.isConfirmed {
			close(in.confirmed)
		}
		u.instances[in.wID] = in
	}
	u.nextWcID.Store(s.NextWcID)
	if s.NextID != 0 {
		u.nextID.Store(s.NextID)
	}
	u.sent = s.Sent
	u.restoreLogins(&s.snapLogins)
}

// snapshot returns the simulator's state.
func (u *Upstream) snapshot() *snapshot {
	s := &snapshot{Version: stateVersion, NextWcID: u.nextWcID.Load(), NextID: u.nextID.Load(), snapLogins: u.snapshotLogins()}
	u.mu.RLock()
	for _, m := range u.members {
		s.Members = append(s.Members, snapMember{Account: m.Account, Password: m.Password, Status: m.Status, Token: m.token, Expired: m.expired})
	}
	for _, in := range u.instances {
		in.mu.Lock()
		s.Instances = append(s.Instances, snapInstance{WID: in.wID, Member: in.owner.Account, DeviceType: in.deviceType, Created: in.created,
			State: in.state.String(), WcID: in.wcID, Confirmed: in.isConfirmed, ScanAs: in.scanAs, KeyBuff: in.keyBuff})
		in.mu.Unlock()
	}
	for _, a := range u.accounts {
		sa := snapAccount{WcID: a.wcID, Current: a.current}
		if a.owner != nil {
			sa.Owner = a.owner.Account
		}
		a.mu.Lock()
		sa.LastSeq = a.lastSeq
		sa.Messages = make([]snapMessage, len(a.msgs))
		for i, m := range a.msgs {
			sa.Messages[i] = snapMessage{Seq: m.seq, ID: m.id, Item: m.item}
		}
		a.mu.Unlock()
		s.Accounts = append(s.Accounts, sa)
	}
	u.mu.RUnlock()
	u.sentMu.Lock()
	s.Sent = slices.Clone(u.sent)
	u.sentMu.Unlock()
	// A stable order keeps the file readable and its diffs small.
	slices.SortFunc(s.Members, func(a, b snapMember) int { return strings.Compare(a.Account, b.Account) })
	slices.SortFunc(s.Instances, func(a, b snapInstance) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.WID, b.WID)
	})
	slices.SortFunc(s.Accounts, func(a, b snapAccount) int { return strings.Compare(a.WcID, b.WcID) })
	return s
}

// save writes the simulator's state to its file, when it has one. Every
// change calls it before answering, so that what a client was told
// survives the process.
func (u *Upstream) save() error {
	st := u.opts.State
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.lock == nil {
		return fmt.Errorf("sim: state %s: closed", st.path)
	}
	data, err := json.MarshalIndent(u.snapshot(), "", " ")
	if err != nil {
		return fmt.Errorf("sim: state: %w", err)
	}
	if err := renameio.WriteFile(st.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("sim: save the state: %w", err)
	}
	// The rename lasts only once the directory is synced too.
	dir, err := os.Open(filepath.Dir(st.path))
	if err != nil {
		return fmt.Errorf("sim: save the state: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("sim: save the state: %w", err)
	}
	return nil
}
