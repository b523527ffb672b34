package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the daemon's Prometheus series. Each Daemon has its own
// registry, so tests can run several daemons in one process.
type metrics struct {
	reg *prometheus.Registry

	synced       *prometheus.CounterVec
	syncedTypes  *prometheus.CounterVec
	pollSeconds  prometheus.Histogram
	pollErrors   *prometheus.CounterVec
	rulesMatched *prometheus.CounterVec
	rulesFailed  *prometheus.CounterVec
	actions      *prometheus.CounterVec
	outboxDepth  prometheus.Gauge
	sessionState *prometheus.GaugeVec
	reloads      *prometheus.CounterVec
	handOff      prometheus.Histogram

	inboundSkipped *prometheus.CounterVec

	handoffs       *prometheus.CounterVec
	withheld       *prometheus.CounterVec
	pausedConvs    prometheus.GaugeFunc
	pausedCountFor func() float64
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		synced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_messages_synced_total", Help: "New messages received through /syncFinder, per account.",
		}, []string{"account"}),
		syncedTypes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_messages_by_type_total", Help: "New messages received through /syncFinder, per message type.",
		}, []string{"type"}),
		pollSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "finderbot_poll_duration_seconds", Help: "Latency of /syncFinder calls.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_poll_errors_total", Help: "Failed /syncFinder calls.",
		}, []string{"account"}),
		rulesMatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_rules_matched_total", Help: "Rule matches.",
		}, []string{"rule"}),
		rulesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_rules_failed_total", Help: "Rule evaluations that failed.",
		}, []string{"rule"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_actions_total", Help: "Outbox actions by kind and result (sent, retried, in_doubt, resent, dead).",
		}, []string{"kind", "result"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "finderbot_outbox_depth", Help: "Actions waiting in the outbox.",
		}),
		sessionState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "finderbot_session_state", Help: "1, labelled with the current state of each account's session.",
		}, []string{"session", "state"}),
		handOff: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "finderbot_reply_latency_seconds", Help: "Time from a page's arrival to the hand-off of a reply it caused to the upstream, pacing included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}),
		inboundSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_inbound_skipped_total", Help: "Page items that could not be processed (no id, an id that does not decode), per account; see /api/inbound-dead-letters.",
		}, []string{"account"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_rule_reloads_total", Help: "Rule reloads by result (ok, failed).",
		}, []string{"result"}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_handoffs_total", Help: "Conversations a person answered from the phone, pausing the bot there, per account.",
		}, []string{"account"}),
		withheld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "finderbot_handoff_withheld_actions_total", Help: "Rule actions not queued because a person had their conversation, per account.",
		}, []string{"account"}),
	}
	m.pausedConvs = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "finderbot_conversations_paused", Help: "Conversations where a person has taken over and the bot is paused.",
	}, func() float64 {
		if m.pausedCountFor == nil {
			return 0
		}
		return m.pausedCountFor()
	})
	m.reg.MustRegister(m.synced, m.syncedTypes, m.pollSeconds, m.pollErrors, m.rulesMatched, m.rulesFailed,
		m.actions, m.outboxDepth, m.sessionState, m.reloads, m.handOff, m.inboundSkipped, m.handoffs, m.withheld, m.pausedConvs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
