package provider

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-chat/switchboard/federation"
)

// metrics are the provider's Prometheus metrics, registered on the server's
// own registry so that several providers can run in one process.
type metrics struct {
	requests   *prometheus.CounterVec
	accepted   *prometheus.CounterVec
	deliveries prometheus.Counter
	streams    prometheus.Gauge
	commitWait prometheus.Histogram
	// staleReloads counts hosted rooms read again because their cached
	// state was behind (submit.go: accept, acceptQueued).
	staleReloads prometheus.Counter
	// outbox counts the federation outbox's events by destination and
	// event (queued, sent, retried, failed).
	outbox *prometheus.CounterVec
	// rateLimited counts requests refused by a rate limit, by limit
	// (ratelimit.go); never by user, room or partner.
	rateLimited *prometheus.CounterVec
	// connsOpen and connRefused are the client API's connections, open
	// and refused by a limit ("source" or "total"; connlimit.go).
	connsOpen   prometheus.Gauge
	connRefused *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_requests_total", Help: "API requests by handler and result code.",
		}, []string{"handler", "code"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messages_accepted_total", Help: "Messages accepted into rooms, by kind.",
		}, []string{"kind"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_deliveries_sent_total", Help: "Queue entries sent to devices.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_streams_open", Help: "Open device streams.",
		}),
		commitWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchboard_submit_seconds", Help: "Time to store and queue a submitted message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		staleReloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_room_reloads_total", Help: "Hosted rooms read again from the store because their cached state was behind (another replica wrote to them, or a queued message before failed).",
		}),
		outbox: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_federation_outbox_total", Help: "Federation outbox events (queued, sent, retried, failed) by destination provider.",
		}, []string{"destination", "event"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_rate_limited_total", Help: "Requests refused by a rate limit (user, partner, room, discovery_user, discovery_partner).",
		}, []string{"limit"}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_connections_open", Help: "Open connections to the client API, streams included.",
		}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_connections_refused_total", Help: "Client API connections refused by a connection limit (source, total): answered too_many_connections, or closed unanswered past the margin.",
		}, []string{"limit"}),
	}
	m.connRefused.WithLabelValues("source")
	m.connRefused.WithLabelValues("total")
	for _, l := range []string{"user", "partner", "room", "discovery_user", "discovery_partner"} {
		m.rateLimited.WithLabelValues(l) // shown at 0 from the start
	}
	reg.MustRegister(m.requests, m.accepted, m.deliveries, m.streams, m.commitWait, m.staleReloads, m.outbox, m.rateLimited, m.connsOpen, m.connRefused)
	return m
}

// OutboxMetrics returns the federation.OutboxMetrics that counts the
// outbox's events in the provider's /metrics.
func (s *Server) OutboxMetrics() federation.OutboxMetrics { return outboxMetrics{s.metrics.outbox} }

type outboxMetrics struct{ c *prometheus.CounterVec }

func (m outboxMetrics) Queued(dest string)  { m.c.WithLabelValues(dest, "queued").Inc() }
func (m outboxMetrics) Sent(dest string)    { m.c.WithLabelValues(dest, "sent").Inc() }
func (m outboxMetrics) Retried(dest string) { m.c.WithLabelValues(dest, "retried").Inc() }
func (m outboxMetrics) Failed(dest string)  { m.c.WithLabelValues(dest, "failed").Inc() }
