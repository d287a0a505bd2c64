package provider

import "github.com/prometheus/client_golang/prometheus"

// metrics are the provider's Prometheus metrics, registered on the server's
// own registry so that several providers can run in one process.
type metrics struct {
	requests   *prometheus.CounterVec
	accepted   *prometheus.CounterVec
	deliveries prometheus.Counter
	streams    prometheus.Gauge
	commitWait prometheus.Histogram
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
	}
	reg.MustRegister(m.requests, m.accepted, m.deliveries, m.streams, m.commitWait)
	return m
}
