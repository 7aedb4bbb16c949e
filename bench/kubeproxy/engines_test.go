package kubeproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"bosun/proxy"
	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	"k8s.io/kubernetes/pkg/proxy/nftables"
	proxyutil "k8s.io/kubernetes/pkg/proxy/util"
	"k8s.io/utils/ptr"
)

// inputs are the Services both engines get, generated once and converted
// once to each engine's input.
type inputs struct {
	specs    []svcSpec
	services []*v1.Service
	slices   []*discovery.EndpointSlice
	ports    []proxy.ServicePort
}

func newInputs(specs []svcSpec) *inputs {
	in := &inputs{specs: specs}
	for i := range specs {
		in.services = append(in.services, specs[i].service())
		in.slices = append(in.slices, specs[i].slice())
		in.ports = append(in.ports, specs[i].servicePort())
	}
	return in
}

// An engine programs one nftables table from the inputs. Every method
// runs on the engine's nsThread.
type engine interface {
	name() string
	table() string
	// start makes a new instance: nothing is programmed yet.
	start(th *nsThread) error
	// load gives the new instance every Service and has it program its
	// table in full.
	load(in *inputs) error
	// replace replaces Service i's endpoint at old by a new pod at ip and
	// has the instance update its table.
	replace(i int, old, ip netip.Addr) error
	stop() error
}

var engines = []func() engine{
	func() engine { return &bosunEngine{} },
	func() engine { return &kubeProxyEngine{} },
}

// bosunEngine is bosun's rule engine, as the agent's runner drives it:
// every change hands it all the service ports; it diffs them against what
// it programmed last.
type bosunEngine struct {
	t     *proxy.Table
	specs []svcSpec
	ports []proxy.ServicePort
}

func (*bosunEngine) name() string  { return "bosun" }
func (*bosunEngine) table() string { return proxy.DefaultTable }

func (e *bosunEngine) start(th *nsThread) error {
	t, err := proxy.Open(proxy.Config{Table: e.table(), NetNS: th.ns})
	e.t = t
	return err
}

func (e *bosunEngine) load(in *inputs) error {
	e.specs, e.ports = slices.Clone(in.specs), slices.Clone(in.ports)
	st, err := e.t.Sync(e.ports)
	if err == nil && (!st.Full || st.Added != len(e.ports)) {
		err = fmt.Errorf("first Sync: %+v, want a full sync of %d ports", st, len(e.ports))
	}
	return err
}

func (e *bosunEngine) replace(i int, old, ip netip.Addr) error {
	e.specs[i] = e.specs[i].replaceEndpoint(old, ip)
	e.ports[i] = e.specs[i].servicePort()
	st, err := e.t.Sync(e.ports)
	if err == nil && (st.Full || st.Changed != 1 || st.Added+st.Removed != 0) {
		err = fmt.Errorf("Sync after one endpoint changed: %+v, want one port changed", st)
	}
	return err
}

func (e *bosunEngine) stop() error { return e.t.Close() }

// kubeProxyEngine is kube-proxy's nftables proxier, fed through its
// informer event handlers as kube-proxy's config package does, without an
// API server.
type kubeProxyEngine struct {
	p      *nftables.Proxier
	specs  []svcSpec
	slices []*discovery.EndpointSlice
}

func (*kubeProxyEngine) name() string  { return "kube-proxy" }
func (*kubeProxyEngine) table() string { return "kube-proxy" }

// kubeProxyConfig is kube-proxy's default configuration for what the
// nftables proxier reads.
func kubeProxyConfig() *kubeproxyconfig.KubeProxyConfiguration {
	return &kubeproxyconfig.KubeProxyConfiguration{
		Mode:          kubeproxyconfig.ProxyModeNFTables,
		NFTables:      kubeproxyconfig.KubeProxyNFTablesConfiguration{MasqueradeBit: ptr.To[int32](14)},
		SyncPeriod:    metav1.Duration{Duration: 30 * time.Second},
		MinSyncPeriod: metav1.Duration{Duration: time.Second},
	}
}

func (e *kubeProxyEngine) start(*nsThread) error {
	ctx := klog.NewContext(context.Background(), logr.New(kubeLog))
	// As kube-proxy with --cluster-cidr (detect-local-mode ClusterCIDR, the
	// default): traffic from outside the pod CIDR is masqueraded.
	p, err := nftables.NewProxier(ctx, kubeProxyConfig(), v1.IPv4Protocol,
		proxyutil.NewDetectLocalByCIDR(podCIDR), nodeName, net.ParseIP("192.168.0.10"),
		nil /* no event recorder: no API server */, nil /* no healthz server */, false)
	if err != nil {
		return err
	}
	// kube-proxy's ServiceCIDR informer would call this.
	p.OnServiceCIDRsChanged([]string{serviceCIDR})
	e.p = p
	return nil
}

// load is kube-proxy's start: the informers deliver every object, then
// report that they have synced. The second Synced call runs the first
// sync (syncProxyRules) directly, on this thread.
func (e *kubeProxyEngine) load(in *inputs) error {
	mark := kubeLog.mark()
	e.specs, e.slices = slices.Clone(in.specs), slices.Clone(in.slices)
	for _, s := range in.services {
		e.p.OnServiceAdd(s)
	}
	for _, es := range e.slices {
		e.p.OnEndpointSliceAdd(es)
	}
	e.p.OnServiceSynced()
	e.p.OnEndpointSlicesSynced()
	return kubeLog.errorsSince(mark)
}

// replace delivers the EndpointSlice update. The handler only queues a
// sync for kube-proxy's sync loop (BoundedFrequencyRunner), which does not
// run here: OnEndpointSlicesSynced runs the proxier's sync function
// (syncProxyRules, unexported) at once, on this thread; it is the
// partial sync the loop would run, of the changes pending.
func (e *kubeProxyEngine) replace(i int, old, ip netip.Addr) error {
	mark := kubeLog.mark()
	e.specs[i] = e.specs[i].replaceEndpoint(old, ip)
	next := e.specs[i].slice()
	e.p.OnEndpointSliceUpdate(e.slices[i], next)
	e.slices[i] = next
	e.p.OnEndpointSlicesSynced()
	return kubeLog.errorsSince(mark)
}

func (e *kubeProxyEngine) stop() error { e.p = nil; return nil }

// kubeLog receives kube-proxy's logs (klog, and the proxier's context
// logger) so that the benchmark output stays benchstat's: a failed sync
// ("Sync failed", "nftables sync failed") fails the benchmark; other
// errors are counted and listed after the run (see printSummary).
var kubeLog = &logSink{others: map[string]int{}}

type logSink struct {
	mu     sync.Mutex
	fatal  []string
	others map[string]int
}

func (s *logSink) Init(logr.RuntimeInfo)  {}
func (s *logSink) Enabled(level int) bool { return level == 0 }
func (s *logSink) Info(_ int, msg string, kv ...any) {
	if msg == "Sync failed" {
		s.add(true, fmt.Sprint(msg, kv))
	}
}
func (s *logSink) Error(err error, msg string, kv ...any) {
	s.add(msg == "nftables sync failed", fmt.Sprint(msg, ": ", err, kv))
}
func (s *logSink) WithValues(...any) logr.LogSink { return s }
func (s *logSink) WithName(string) logr.LogSink   { return s }

func (s *logSink) add(fatal bool, m string) {
	if len(m) > 2000 {
		m = m[:2000] + "..."
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if fatal {
		s.fatal = append(s.fatal, m)
	} else {
		s.others[m]++
	}
}

func (s *logSink) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.fatal)
}

func (s *logSink) errorsSince(mark int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fatal) == mark {
		return nil
	}
	return fmt.Errorf("kube-proxy's sync failed: %v", s.fatal[mark:])
}

// otherErrors lists the non-fatal errors kube-proxy logged, with counts.
func (s *logSink) otherErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for m, n := range s.others {
		out = append(out, fmt.Sprintf("%q x%d", m, n))
	}
	slices.Sort(out)
	return out
}
