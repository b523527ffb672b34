package sdk

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/finderbot/finderbot/sdk/internal/pluginpb"
)

// ProtocolVersion is the version of the daemon–plugin protocol this sdk
// speaks. The daemon and a plugin agree on the highest version both know
// when the plugin starts, so a plugin built with an older sdk keeps working
// with a newer daemon for as long as the daemon still speaks its version.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by the daemon and every
// plugin. Its cookie only tells a plugin binary that the daemon started it;
// it is not a security measure (checksums pinned by `finderbot plugins lock`
// are).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "FINDERBOT_PLUGIN",
	MagicCookieValue: "5d1f1f0e-finderbot-plugin",
}

// pluginKey names finderbot's one plugin type in go-plugin's plugin sets.
const pluginKey = "finderbot"

// Serve runs p as a finderbot plugin: it is a plugin's whole main.
//
//	func main() { sdk.Serve(&myPlugin{}) }
//
// Serve returns when the daemon stops the plugin, after calling p.Close if p
// implements Closer. Run by hand rather than by the daemon, the binary says
// that it is a plugin and exits with status 1.
//
// Whatever the plugin writes to standard output or standard error ends up in
// the daemon's log under the plugin's name; NewLogger gives structured
// records the same way.
func Serve(p Plugin, opts ...ServeOpt) {
	if p == nil {
		panic("sdk: Serve called with a nil Plugin")
	}
	gp := &grpcPlugin{impl: p}
	cfg := &serveConfig{ServeConfig: plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: {pluginKey: gp}},
		GRPCServer:       plugin.DefaultGRPCServer,
		// JSON lets the daemon keep the level of go-plugin's own records.
		Logger: hclog.New(&hclog.LoggerOptions{
			Level: hclog.Warn, Output: os.Stderr, JSONFormat: true,
		}),
	}}
	for _, o := range opts {
		o(cfg)
	}
	plugin.Serve(&cfg.ServeConfig)
	gp.close()
	if cfg.closed != nil {
		close(cfg.closed)
	}
}

// ServeOpt changes how Serve runs a plugin. Plugins started by the daemon
// need none.
type ServeOpt func(*serveConfig)

type serveConfig struct {
	plugin.ServeConfig
	closed chan<- struct{}
}

// WithTestServer makes Serve run in the current process for a test instead
// of taking the process over: it sends the address to connect to on reattach,
// stops when ctx ends, and then closes closed. sdktest.Start uses it.
func WithTestServer(ctx context.Context, reattach chan<- *plugin.ReattachConfig, closed chan<- struct{}) ServeOpt {
	return func(c *serveConfig) {
		c.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach}
		c.closed = closed
	}
}

// HostPluginSets returns the go-plugin plugin sets a daemon passes as
// ClientConfig.VersionedPlugins to start a plugin process; host serves the
// plugin's callbacks. Plugin authors do not need it.
func HostPluginSets(host Host) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {pluginKey: &grpcPlugin{host: host}}}
}

// Dispense returns the RemotePlugin of a started go-plugin client created with
// HostPluginSets. Plugin authors do not need it.
func Dispense(c plugin.ClientProtocol) (*RemotePlugin, error) {
	raw, err := c.Dispense(pluginKey)
	if err != nil {
		return nil, fmt.Errorf("sdk: dispense: %w", err)
	}
	rp, ok := raw.(*RemotePlugin)
	if !ok {
		return nil, fmt.Errorf("sdk: dispense: unexpected %T", raw)
	}
	return rp, nil
}

// grpcPlugin joins sdk to go-plugin. In the plugin process it serves impl; in
// the daemon it makes RemotePlugins whose callbacks go to host.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
	host Host

	mu      sync.Mutex
	servers []*pluginServer
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

func (g *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	ps := &pluginServer{impl: g.impl, broker: broker, host: noHost{}}
	g.mu.Lock()
	g.servers = append(g.servers, ps)
	g.mu.Unlock()
	pluginpb.RegisterPluginServer(s, ps)
	return nil
}

// GRPCClient is called by go-plugin with a ctx that ends when the plugin
// process exits; RemotePlugin.Done exposes it so that the daemon notices a
// crash at once rather than at the next health check.
func (g *grpcPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	rp := &RemotePlugin{client: pluginpb.NewPluginClient(c), done: ctx.Done()}
	if g.host == nil {
		return rp, nil
	}
	id := broker.NextId()
	go broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginpb.RegisterHostServer(s, &hostServer{host: g.host})
		return s
	})
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := rp.client.Attach(actx, &pluginpb.AttachRequest{HostBrokerId: id}); err != nil {
		return nil, fmt.Errorf("sdk: attach host callbacks: %w", err)
	}
	return rp, nil
}

// close ends the plugin's side: callback connections, then the author's
// Closer.
func (g *grpcPlugin) close() {
	g.mu.Lock()
	servers := g.servers
	g.servers = nil
	g.mu.Unlock()
	for _, s := range servers {
		s.closeHost()
	}
	if c, ok := g.impl.(Closer); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "sdk: close:", err)
		}
	}
}

// pluginServer serves a Plugin over gRPC in the plugin process.
type pluginServer struct {
	pluginpb.UnimplementedPluginServer
	impl   Plugin
	broker *plugin.GRPCBroker

	mu       sync.RWMutex
	host     Host
	hostConn *grpc.ClientConn
}

func (s *pluginServer) Attach(_ context.Context, r *pluginpb.AttachRequest) (*pluginpb.AttachResponse, error) {
	conn, err := s.broker.Dial(r.GetHostBrokerId())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "sdk: dial host callbacks: %v", err)
	}
	s.mu.Lock()
	old := s.hostConn
	s.host, s.hostConn = &hostClient{c: pluginpb.NewHostClient(conn)}, conn
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return &pluginpb.AttachResponse{}, nil
}

func (s *pluginServer) closeHost() {
	s.mu.Lock()
	conn := s.hostConn
	s.host, s.hostConn = noHost{}, nil
	s.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

func (s *pluginServer) Describe(ctx context.Context, _ *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx, &DescribeRequest{})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "describe: %v", err)
	}
	if d == nil {
		return nil, status.Error(codes.Internal, "describe: plugin returned no description")
	}
	return describeToProto(d), nil
}

// Handle runs the author's Handle. Its error travels inside the response, so
// that a gRPC error always means the call failed rather than the action. A
// panic is not recovered: it ends the process, which the daemon restarts
// cleanly instead of trusting state the panic may have left broken.
func (s *pluginServer) Handle(ctx context.Context, r *pluginpb.HandleRequest) (*pluginpb.HandleResponse, error) {
	req := handleRequestFromProto(r)
	s.mu.RLock()
	req.Host = &accountHost{Host: s.host, account: req.Account}
	s.mu.RUnlock()
	resp, err := s.impl.Handle(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			// The plugin gave up because the daemon's deadline passed or the
			// daemon cancelled: that is the call failing, not the action.
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return &pluginpb.HandleResponse{Error: err.Error(), Temporary: IsTemporary(err)}, nil
	}
	return handleResponseToProto(resp), nil
}

func (s *pluginServer) Health(ctx context.Context, _ *pluginpb.HealthRequest) (*pluginpb.HealthResponse, error) {
	hc, ok := s.impl.(HealthChecker)
	if !ok {
		return &pluginpb.HealthResponse{}, nil
	}
	if err := hc.Health(ctx); err != nil {
		return &pluginpb.HealthResponse{Problem: err.Error()}, nil
	}
	return &pluginpb.HealthResponse{}, nil
}

// accountHost gives Host.Send the same default account as
// HandleResponse.Sends: the one the action runs for.
type accountHost struct {
	Host
	account string
}

func (h *accountHost) Send(ctx context.Context, msg Send) error {
	if msg.Account == "" {
		msg.Account = h.account
	}
	return h.Host.Send(ctx, msg)
}
