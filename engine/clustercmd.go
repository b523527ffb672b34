package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/lease"
	"github.com/finderbot/finderbot/engine/store/natsstore"
)

// ClusterView is what `finderbot cluster status` shows: the daemons alive on
// the stream and who holds which account, read from JetStream itself, so
// that it answers even when a daemon does not.
type ClusterView struct {
	Stream string `json:"stream"`
	// Events and Bytes are the event stream's size.
	Events uint64 `json:"events"`
	Bytes  uint64 `json:"bytes"`
	// Replicas is the stream's replica count; Current counts the replicas
	// that are up to date with its leader, and Leader names it.
	Replicas int    `json:"replicas"`
	Current  int    `json:"current"`
	Leader   string `json:"leader"`
	// Nodes are the daemons whose heartbeat is alive.
	Nodes []NodeView `json:"nodes"`
	// Accounts are the configured accounts and their holders.
	Accounts []AccountView `json:"accounts"`
}

// NodeView is one daemon in ClusterView.
type NodeView struct {
	Node string `json:"node"`
	// Admin is the daemon's admin address.
	Admin string `json:"admin,omitempty"`
	// Held counts the accounts whose lease it holds.
	Held int `json:"held"`
	// Heartbeat is the time since its last heartbeat (by the server's
	// clock), and MaxLeaseAge the oldest of its leases' renewals: a
	// daemon falling behind shows it here before it loses accounts.
	Heartbeat   time.Duration `json:"heartbeat"`
	MaxLeaseAge time.Duration `json:"max_lease_age"`
}

// AccountView is one account in ClusterView.
type AccountView struct {
	Account string `json:"account"`
	// Holder is the daemon that serves it, "" when none does.
	Holder string `json:"holder,omitempty"`
	// LeaseAge is the time since its lease was last renewed.
	LeaseAge time.Duration `json:"lease_age,omitempty"`
	// Revision is the lease's revision: it grows at every renewal and
	// every change of hands.
	Revision uint64 `json:"revision,omitempty"`
	// LastWrite is the time since the account's state last changed (a
	// page committed, a delivery recorded), by the server's clock: an
	// account whose holder falls behind shows it here. Read with
	// --accounts only.
	LastWrite time.Duration `json:"last_write,omitempty"`
}

// ReadCluster reads the cluster of the configuration at cfgPath; with
// writes, each account's last write too (a request per account).
func ReadCluster(ctx context.Context, cfgPath string, writes bool) (ClusterView, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return ClusterView{}, err
	}
	if cfg.Store.Kind != config.StoreNATS {
		return ClusterView{}, fmt.Errorf("cluster: %s keeps its state in the embedded store (store.kind %s); there is no cluster to show", cfgPath, cfg.Store.Kind)
	}
	nc, err := ConnectNATS(cfg.Store, "finderbot cluster status")
	if err != nil {
		return ClusterView{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return ClusterView{}, fmt.Errorf("cluster: %w", err)
	}
	view := ClusterView{Stream: cfg.Store.Stream}
	st, err := js.Stream(ctx, cfg.Store.Stream)
	if err != nil {
		return ClusterView{}, fmt.Errorf("cluster: stream %s at %s: %w (has a daemon started with this configuration?)", cfg.Store.Stream, cfg.Store.URL, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return ClusterView{}, fmt.Errorf("cluster: stream %s: %w", cfg.Store.Stream, err)
	}
	view.Events, view.Bytes, view.Replicas = info.State.Msgs, info.State.Bytes, info.Config.Replicas
	if ci := info.Cluster; ci != nil {
		view.Leader, view.Current = ci.Leader, 1
		for _, r := range ci.Replicas {
			if r.Current {
				view.Current++
			}
		}
	}
	nodes := map[string]*NodeView{}
	if kv, err := js.KeyValue(ctx, cfg.Store.Stream+nodesSuffix); err == nil {
		for _, k := range listKeys(ctx, kv) {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue
			}
			var rec nodeRecord
			if json.Unmarshal(e.Value(), &rec) != nil {
				continue
			}
			nodes[rec.Node] = &NodeView{Node: rec.Node, Admin: rec.Admin, Heartbeat: ageOf(e.Created())}
		}
	}
	holders, err := js.KeyValue(ctx, cfg.Store.Stream+holdersSuffix)
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return ClusterView{}, fmt.Errorf("cluster: the lease bucket: %w", err)
	}
	for _, ac := range cfg.Accounts {
		av := AccountView{Account: ac.Name}
		if holders != nil {
			rec, rev, written, ok, err := lease.Peek(ctx, holders, lease.Key("acct", ac.Name))
			if err != nil {
				return ClusterView{}, fmt.Errorf("cluster: %w", err)
			}
			if ok {
				av.Holder, av.Revision, av.LeaseAge = rec.Holder, rev, ageOf(written)
				n := nodes[rec.Holder]
				if n == nil {
					// A holder without a heartbeat: a daemon that died
					// with its leases still running.
					n = &NodeView{Node: rec.Holder, Heartbeat: -1}
					nodes[rec.Holder] = n
				}
				n.Held++
				n.MaxLeaseAge = max(n.MaxLeaseAge, av.LeaseAge)
			}
		}
		if writes {
			if m, err := st.GetLastMsgForSubject(ctx, natsstore.Subject(cfg.Store.Stream, ac.Name)); err == nil {
				av.LastWrite = ageOf(m.Time)
			}
		}
		view.Accounts = append(view.Accounts, av)
	}
	for _, n := range nodes {
		view.Nodes = append(view.Nodes, *n)
	}
	slices.SortFunc(view.Nodes, func(a, b NodeView) int { return cmp.Compare(a.Node, b.Node) })
	return view, nil
}

// ageOf is the time since t, read when t was: the accounts are read one
// after another, so a clock read once before them would make the leases
// renewed meanwhile look written in the future.
func ageOf(t time.Time) time.Duration {
	return max(0, time.Since(t)).Round(time.Millisecond)
}

func listKeys(ctx context.Context, kv jetstream.KeyValue) []string {
	out, _ := keys(ctx, kv)
	slices.Sort(out)
	return out
}

// PrintCluster is `finderbot cluster status`: the daemons, their shares and
// lease ages, and with accounts each account's holder.
func PrintCluster(ctx context.Context, cfgPath string, out io.Writer, accounts, asJSON bool) error {
	view, err := ReadCluster(ctx, cfgPath, accounts)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(view)
	}
	free := 0
	for _, a := range view.Accounts {
		if a.Holder == "" {
			free++
		}
	}
	fmt.Fprintf(out, "stream %s: %d events, %d bytes, %d replicas (%d current, leader %s)\n", view.Stream, view.Events, view.Bytes, view.Replicas, view.Current, cmp.Or(view.Leader, "-"))
	fmt.Fprintf(out, "%d accounts: %d held, %d free\n\n", len(view.Accounts), len(view.Accounts)-free, free)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tACCOUNTS\tHEARTBEAT\tOLDEST LEASE\tADMIN")
	for _, n := range view.Nodes {
		beat := n.Heartbeat.String() + " ago"
		if n.Heartbeat < 0 {
			beat = "none (stopped?)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", n.Node, n.Held, beat, n.MaxLeaseAge, cmp.Or(n.Admin, "-"))
	}
	tw.Flush()
	if accounts {
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tHOLDER\tLEASE AGE\tREVISION\tLAST WRITE")
		for _, a := range view.Accounts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", a.Account, cmp.Or(a.Holder, "-"), a.LeaseAge, a.Revision, a.LastWrite)
		}
		tw.Flush()
	}
	return nil
}
