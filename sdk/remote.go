package sdk

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/finderbot/finderbot/sdk/internal/pluginpb"
)

// RemotePlugin is the daemon's handle on a plugin process: a Plugin whose
// calls go over gRPC. Plugin authors do not need it; the daemon gets one
// from Dispense and sdktest from Start.
//
// Handle returns an *ActionError when the plugin answered with an error or
// with an answer past the bounds (MaxResponseBytes, MaxResponseMessages,
// MaxResponseText, MaxDiagnostics).
// Every other error means the call failed on the way: the process died, the
// deadline passed (errors.Is(err, context.DeadlineExceeded)), the connection
// broke.
type RemotePlugin struct {
	client pluginpb.PluginClient
	done   <-chan struct{}
}

var _ Plugin = (*RemotePlugin)(nil)

// Describe asks the plugin to describe itself.
func (r *RemotePlugin) Describe(ctx context.Context, _ *DescribeRequest) (*DescribeResponse, error) {
	d, err := r.client.Describe(ctx, &pluginpb.DescribeRequest{}, grpc.MaxCallRecvMsgSize(MaxResponseBytes))
	if err != nil {
		return nil, callErr("describe", err)
	}
	out, err := describeFromProto(d)
	if err != nil {
		return nil, fmt.Errorf("sdk: describe: %w", err)
	}
	return out, nil
}

// Handle asks the plugin to run an action. req.Host is not sent: the plugin
// reaches the daemon through the Host given to HostPluginSets.
func (r *RemotePlugin) Handle(ctx context.Context, req *HandleRequest) (*HandleResponse, error) {
	resp, err := r.client.Handle(ctx, handleRequestToProto(req), grpc.MaxCallRecvMsgSize(MaxResponseBytes))
	if status.Code(err) == codes.ResourceExhausted {
		// An answer too large to take is the plugin's failure; the
		// connection is fine.
		return nil, &ActionError{Message: "answer refused: " + status.Convert(err).Message()}
	}
	if err != nil {
		return nil, callErr("handle", err)
	}
	if msg := resp.GetError(); msg != "" {
		return nil, &ActionError{Message: cutError(msg), Temporary: resp.GetTemporary()}
	}
	out, err := handleResponseFromProto(resp)
	if err != nil {
		// The plugin answered, wrongly: a failure of the action, not of
		// the call, and doing it again would answer the same.
		return nil, &ActionError{Message: "answer refused: " + err.Error()}
	}
	return out, nil
}

// Health returns nil when the plugin can work, an *ActionError carrying the
// plugin's own account of its problem when it says it cannot, and any other
// error when it did not answer.
func (r *RemotePlugin) Health(ctx context.Context) error {
	resp, err := r.client.Health(ctx, &pluginpb.HealthRequest{})
	if err != nil {
		return callErr("health", err)
	}
	if p := resp.GetProblem(); p != "" {
		return &ActionError{Message: cutError(p)}
	}
	return nil
}

// Done is closed when the plugin process has exited, or nil for a plugin
// that does not run in a process of its own.
func (r *RemotePlugin) Done() <-chan struct{} { return r.done }

// callErr maps a failed gRPC call to an error in which a passed deadline
// stays recognisable with errors.Is. Cancellation is not mapped: gRPC also
// reports a closing connection as cancelled, so callers check their own ctx.
func callErr(op string, err error) error {
	if status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("sdk: %s: %w", op, context.DeadlineExceeded)
	}
	if st, ok := status.FromError(err); ok {
		// The message may be the plugin's own (a failed Describe).
		return fmt.Errorf("sdk: %s: %s: %s", op, st.Code(), cutError(st.Message()))
	}
	return fmt.Errorf("sdk: %s: %w", op, err)
}
