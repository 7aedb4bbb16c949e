package dns

import (
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// queryMetrics count the queries answered and the exchanges with upstream
// resolvers (bosun_dns_queries_total, bosun_dns_upstream_*). The counters
// of every (qtype, rcode) pair are made once, so counting a query on the
// hot path is one array index and one atomic add, no label lookup.
type queryMetrics struct {
	queries          *prometheus.CounterVec
	byPair           [len(metricQtypes) + 1][len(metricRcodes) + 1]prometheus.Counter
	upstreamTime     prometheus.Histogram
	upstreamFailures prometheus.Counter
}

// metricQtypes are the query types counted by name; others are "other".
var metricQtypes = [...]uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypePTR, mdns.TypeCNAME,
	mdns.TypeTXT, mdns.TypeMX, mdns.TypeNS, mdns.TypeSOA, mdns.TypeHTTPS, mdns.TypeANY}

// metricRcodes are the response codes counted by name; others are "other".
var metricRcodes = [...]int{mdns.RcodeSuccess, mdns.RcodeFormatError, mdns.RcodeServerFailure,
	mdns.RcodeNameError, mdns.RcodeNotImplemented, mdns.RcodeRefused, mdns.RcodeBadVers}

func newQueryMetrics() *queryMetrics {
	m := &queryMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_dns_queries_total",
			Help: "Queries answered (from the cluster domain or forwarded), by query type (qtype: A, AAAA, SRV, ..., other; none for a packet without a question) and response code (rcode: NOERROR, NXDOMAIN, SERVFAIL, ..., other).",
		}, []string{"qtype", "rcode"}),
		upstreamTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bosun_dns_upstream_duration_seconds",
			Help:    "Time of one exchange with one upstream resolver for a forwarded query, failed ones too (a timeout counts its whole wait).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		upstreamFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_dns_upstream_failures_total",
			Help: "Exchanges with an upstream resolver that failed (unreachable, timeout); the next upstream is tried, and a query none answers gets SERVFAIL.",
		}),
	}
	for i := range m.byPair {
		qt := "other"
		if i < len(metricQtypes) {
			qt = mdns.TypeToString[metricQtypes[i]]
		}
		for j := range m.byPair[i] {
			rc := "other"
			if j < len(metricRcodes) {
				rc = mdns.RcodeToString[metricRcodes[j]]
			}
			m.byPair[i][j] = m.queries.WithLabelValues(qt, rc)
		}
	}
	return m
}

func (m *queryMetrics) register(reg prometheus.Registerer) {
	if reg != nil {
		reg.MustRegister(m.queries, m.upstreamTime, m.upstreamFailures)
	}
}

// answered counts one reply to req.
func (m *queryMetrics) answered(req *mdns.Msg, rcode int) {
	if len(req.Question) != 1 {
		m.queries.WithLabelValues("none", rcodeLabel(rcode)).Inc() // malformed: rare
		return
	}
	i := len(metricQtypes)
	for k, t := range metricQtypes {
		if t == req.Question[0].Qtype {
			i = k
			break
		}
	}
	j := len(metricRcodes)
	for k, c := range metricRcodes {
		if c == rcode {
			j = k
			break
		}
	}
	m.byPair[i][j].Inc()
}

// rejected counts a packet refused before its question was read.
func (m *queryMetrics) rejected(rcode int) {
	m.queries.WithLabelValues("none", rcodeLabel(rcode)).Inc()
}

func rcodeLabel(rcode int) string {
	for _, c := range metricRcodes {
		if c == rcode {
			return mdns.RcodeToString[c]
		}
	}
	return "other"
}

// exchanged records one exchange with an upstream, begun at start.
func (m *queryMetrics) exchanged(start time.Time, err error) {
	m.upstreamTime.Observe(time.Since(start).Seconds())
	if err != nil {
		m.upstreamFailures.Inc()
	}
}
