// Package sdk is everything a finderbot plugin author imports: the Finder
// message model that rules and plugins see, and the types a plugin exchanges
// with the daemon. It is a Go module of its own,
// github.com/finderbot/finderbot/sdk, so that a plugin depends on the plugin
// protocol (go-plugin, gRPC, protobuf) and on nothing of the daemon.
//
// # Writing a plugin
//
// A plugin is a Go program that runs in a process of its own, started and
// supervised by the daemon. A plugin that panics, hangs or leaks cannot take
// the daemon down: the daemon restarts it, and the actions it missed are
// retried from the daemon's durable outbox.
//
// Implement Plugin and hand it to Serve; that call is the whole main:
//
//	type greeter struct{}
//
//	func (greeter) Describe(ctx context.Context, _ *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
//		return &sdk.DescribeResponse{
//			Name: "greeter", Version: "1.0.0",
//			Actions: []sdk.Action{{
//				Name:   "greet",
//				Params: []sdk.Param{{Name: "greeting", Default: "欢迎"}},
//			}},
//		}, nil
//	}
//
//	func (greeter) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
//		return sdk.TextReply(req.Param("greeting") + "！"), nil
//	}
//
//	func main() { sdk.Serve(greeter{}) }
//
// Describe names the actions and their parameters; the daemon checks rules
// against them, fills in defaults and refuses calls that lack a required
// parameter before the plugin sees them. A rule runs an action with
// "plugin: greeter.greet" and the action's params. The plugin's name in rules
// is its executable's name.
//
// Handle gets the action's ID (see below) and name, its params (templates
// already rendered), the triggering Message or cron Tick, the account, and a
// Host. Its ctx carries
// the daemon's deadline and is cancelled when the daemon gives up; pass it to
// everything that blocks. The response carries:
//
//   - Replies: texts answering the triggering message, addressed by the daemon;
//   - Sends: texts to anyone the account can write to;
//   - Diagnostics: notes for the operator that do not fail the action.
//
// Replies and sends go through the daemon's durable outbox and per-account
// rate limit, like the actions of rules. Return an error when the action
// could not be done; wrap it with RetryLater when trying again later may work
// (a service the plugin depends on is down).
//
// # Doing an action once
//
// The daemon performs plugin actions at least once: after a timeout, a
// plugin crash or a daemon crash it calls Handle again for the same action.
// HandleRequest.ID is the same on every such retry and differs between
// actions, so a plugin whose effect must happen once (an order placed, a
// ticket opened) records the IDs it has handled and answers a repeated ID as
// it did the first time:
//
//	func (p *crm) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
//		key := "done/" + req.ID
//		_, done, err := req.Host.Get(ctx, key)
//		if err != nil {
//			return nil, err
//		}
//		if !done || req.ID == "" { // "": the caller gave no ID to go by
//			if err := p.openTicket(ctx, req.ID, req.Message); err != nil {
//				return nil, sdk.RetryLater(err)
//			}
//			if err := req.Host.Put(ctx, key, nil); err != nil {
//				return nil, err
//			}
//		}
//		return sdk.TextReply("已为您登记"), nil
//	}
//
// A crash between the effect and the Put still repeats the effect on the
// retry; where the service the plugin calls accepts an idempotency key of its
// own, pass it the ID too, as openTicket does above. The store keeps the
// recorded IDs until the plugin deletes them.
//
// # Calling back into the daemon
//
// HandleRequest.Host reaches the daemon: Send queues a message at once,
// Get/Put/Delete/Keys keep small values in a store of the plugin's own that
// survives restarts (the daemon keeps it with its state), Log writes to the
// daemon's log under the plugin's name (NewLogger wraps it as a *slog.Logger),
// and Token returns the current access token of a named upstream session.
// Whatever a plugin writes to standard output or standard error also ends up
// in the daemon's log.
//
// The daemon bounds what a plugin hands it. Host.Send refuses a text past
// MaxResponseText, and Send, Get, Put, Delete, Keys and Token refuse a name
// (receiver, session, account, key, prefix) past MaxNameBytes, with an error
// naming the bound; nothing past them is stored. A description whose texts
// are past MaxDescribeText is refused. A plugin's log output — standard
// output and error, Log, and the Diagnostics it returns — is cut to a line
// length and a rate of lines set by the operator; the rest is dropped and
// counted.
//
// # Optional capabilities
//
// A plugin may also implement HealthChecker, to report problems such as a
// configuration file that failed to load (shown by `finderbot plugins ls`),
// and Closer, to release resources when the daemon stops it.
//
// # Reading the files an operator names
//
// A plugin that reads a file of its own (a keyword table, a template) reads
// it with ReadFile(path, MaxFileSize) rather than os.ReadFile: the operator
// may name by mistake a named pipe, which os.ReadFile would wait on forever,
// or a link to /dev/zero, which it would read until memory runs out.
// ReadFile refuses both at once, and a file past the limit, with an error
// naming the path and what it is; OpenRegular does the same for a file the
// plugin reads itself, through a bound of its own.
//
// # Testing, building and installing
//
// Package sdktest runs a plugin in the test's process, through the same gRPC
// protocol the daemon uses, with an in-memory Host:
//
//	p := sdktest.Start(t, greeter{}, sdktest.NewHost())
//	resp, err := p.Handle(ctx, &sdk.HandleRequest{Action: "greet", Message: sdktest.Text("你好")})
//
// Build the plugin into the daemon's plugin directory and pin its checksum;
// the daemon refuses unpinned or changed executables:
//
//	go build -o /etc/finderbot/plugins/greeter .
//	finderbot plugins lock --dir /etc/finderbot/plugins
//	finderbot plugins ls --dir /etc/finderbot/plugins
//
// The plugin runs with the plugin directory as its working directory.
//
// `finderbot plugins new NAME` writes a new plugin module that does all of
// this, against the source of this SDK (see Source).
//
// Names in this package that mention go-plugin (Handshake, HostPluginSets,
// Dispense, RemotePlugin, WithTestServer) are the daemon's and sdktest's side
// of the protocol, and Source is `finderbot plugins new`'s; plugins do not
// need them.
package sdk
