package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"bosun/api"
	"bosun/gitsource"
	"bosun/ipalloc"
	"bosun/manifest"
	"bosun/nodes"
	"bosun/preview"
	"bosun/store"
)

// backend implements api.Backend for a replica.
type backend struct {
	cfg   Config
	st    *store.Store
	cache *store.Cache // the replica's cache: plans and logs read it
	agent *nodes.Agent // this machine's agent, nil without one
	trust *trust       // how to reach other nodes' log servers

	planMu  sync.Mutex // one plan fetch at a time
	planSrc *gitsource.Source

	keyMu sync.Mutex
	key   []byte // the cluster key, read once
}

// Plan previews a ref of the tracked repository, or files sent by the CLI,
// against the revision the cluster runs and the observed cluster. A ref
// that is a branch the running revision names in bosun.dev/canary-branch
// also gets, per Deployment naming it, what its canary would run
// (canaryPlans); the rest of the result is then what merging the branch
// would do.
func (b *backend) Plan(ctx context.Context, req api.PlanRequest) (*api.PlanResult, error) {
	res := &api.PlanResult{}
	current, cerr := b.st.Desired(ctx)
	if cerr != nil {
		return nil, cerr
	}
	var currentSet *manifest.Set
	if current != nil {
		res.Current = &current.Revision
		currentSet = setFromDesired(current)
	}
	snap, serr := b.cache.Snapshot(ctx)
	if serr != nil {
		return nil, serr
	}
	var set *manifest.Set
	var err error
	if req.Ref != "" {
		branch := branchOfRef(req.Ref)
		deps := canaryDeployments(currentSet, branch)
		var rev *gitsource.Revision
		rev, err = b.resolve(ctx, req.Ref)
		if err != nil {
			if len(deps) == 0 || !errors.Is(err, gitsource.ErrRefNotFound) {
				return nil, err
			}
			// The canary's branch is missing: that is the plan.
			missing := gitsource.Revision{Branch: branch, Missing: true, Err: "branch " + branch + " does not exist"}
			res.Canaries = canaryPlans(b.cfg.Policy, b.cfg.Path, nil, currentSet, deps, missing, loadedBranch{}, snap, time.Now())
			return res, nil
		}
		defer b.planSrc.Release(rev)
		res.Revision = &store.Revision{Commit: rev.Commit, Author: rev.Author, Message: firstLine(rev.Message), Time: rev.Time, Signer: signerOf(*rev)}
		set, err = b.cfg.Policy.LoadDir(rev.Dir, b.cfg.Path)
		set, err = planWindows(rev.Dir, set, err) // syncwindow.go
		if len(deps) > 0 {
			key, kerr := b.clusterKey(ctx)
			if kerr != nil {
				return nil, kerr
			}
			r := *rev
			r.Branch = branch
			// Before finish: the candidate is the branch's template as
			// loaded, stamped with main's configuration.
			res.Canaries = canaryPlans(b.cfg.Policy, b.cfg.Path, key, currentSet, deps, r, loadedBranch{set: set, err: err}, snap, time.Now())
		}
		if why := untrusted(*rev); why != "" {
			res.Errors = []string{why} // the leader would reject it whole
			return res, nil
		}
	} else {
		set, err = loadFiles(b.cfg.Policy, req.Files)
	}
	if err == nil {
		set, err = b.finish(ctx, currentSet, set, snap.Services)
	}
	var errs manifest.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			res.Errors = append(res.Errors, e.Error())
		}
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	o := observed(snap)
	if o.Volumes, err = observeVolumes(ctx, b.st, nil); err != nil { // retained volumes and volume capacity, as the leader sees them
		return nil, err
	}
	res.Preview = preview.Compute(currentSet, set, o, time.Now())
	return res, nil
}

// resolve fetches a ref into a clone of its own (the leader's clone
// belongs to its Git source); the caller releases the revision.
func (b *backend) resolve(ctx context.Context, ref string) (*gitsource.Revision, error) {
	b.planMu.Lock()
	defer b.planMu.Unlock()
	if b.planSrc == nil {
		src, err := gitsource.New(gitsource.Config{
			URL: b.cfg.Repo, Branch: b.cfg.Branch, Dir: filepath.Join(b.cfg.DataDir, "git-plan"),
			Auth: b.cfg.GitAuth, Logger: b.cfg.Logger, TrustedKeys: b.cfg.trustedKeys,
		})
		if err != nil {
			return nil, err
		}
		b.planSrc = src
	}
	rev, err := b.planSrc.Resolve(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return rev, nil
}

// clusterKey reads the cluster key once.
func (b *backend) clusterKey(ctx context.Context) ([]byte, error) {
	b.keyMu.Lock()
	defer b.keyMu.Unlock()
	if b.key == nil {
		key, err := b.st.ClusterKey(ctx)
		if err != nil {
			return nil, err
		}
		b.key = key
	}
	return b.key, nil
}

// finish takes a loaded revision the rest of the way, as the leader does.
func (b *backend) finish(ctx context.Context, applied, next *manifest.Set, stored []corev1.Service) (*manifest.Set, error) {
	key, err := b.clusterKey(ctx)
	if err != nil {
		return nil, err
	}
	return finishRevision(key, b.cfg.Services, applied, next, stored)
}

// finishRevision takes a revision whose manifests are valid on their own
// the rest of the way to being applied: it is refused (with Errors) when it
// breaks an immutable ConfigMap or Secret of the applied revision, or when
// its Services cannot have the addresses they ask for; its Services get
// their ClusterIPs and node ports (ipalloc: kept from the applied revision,
// else from the Services stored in etcd), and its pod templates their
// configuration hashes. The leader and `bosun plan` both go through it, so
// a plan shows what applying would do, addresses included.
func finishRevision(key []byte, svc ipalloc.Config, applied, next *manifest.Set, stored []corev1.Service) (*manifest.Set, error) {
	var errs manifest.Errors
	if err := manifest.CheckUpdate(applied, next); err != nil {
		if !errors.As(err, &errs) {
			return nil, err
		}
	}
	var prev []corev1.Service
	if applied != nil {
		prev = applied.Services
	}
	if err := ipalloc.Fill(svc, next, prev, stored); err != nil {
		var more manifest.Errors
		if !errors.As(err, &more) {
			return nil, err
		}
		errs = append(errs, more...)
	}
	if len(errs) > 0 {
		manifest.SortErrors(errs)
		return nil, errs
	}
	next.StampConfigHashes(key)
	return next, nil
}

// loadFiles loads the CLI's files exactly as a revision is loaded.
func loadFiles(pol manifest.Policy, files map[string]string) (*manifest.Set, error) {
	data := make(map[string][]byte, len(files))
	for name, content := range files {
		data[name] = []byte(content)
	}
	return pol.LoadFiles(data)
}

// setFromDesired turns the stored desired revision back into a set.
func setFromDesired(d *store.Desired) *manifest.Set {
	return &manifest.Set{Pods: d.Pods, Deployments: d.Deployments, Services: d.Services,
		ConfigMaps: d.ConfigMaps, Secrets: d.Secrets, Namespaces: d.Namespaces, Jobs: d.Jobs, CronJobs: d.CronJobs,
		DaemonSets: d.DaemonSets, StatefulSets: d.StatefulSets, PersistentVolumeClaims: d.PersistentVolumeClaims,
		Ingresses: d.Ingresses, IngressClasses: d.IngressClasses}
}

// desiredFrom records a set for the store.
func desiredFrom(rev store.Revision, set *manifest.Set) *store.Desired {
	return &store.Desired{Revision: rev, Pods: set.Pods, Deployments: set.Deployments, Services: set.Services,
		ConfigMaps: set.ConfigMaps, Secrets: set.Secrets, Namespaces: set.Namespaces, Jobs: set.Jobs, CronJobs: set.CronJobs,
		DaemonSets: set.DaemonSets, StatefulSets: set.StatefulSets, PersistentVolumeClaims: set.PersistentVolumeClaims,
		Ingresses: set.Ingresses, IngressClasses: set.IngressClasses}
}

// Logs streams a container's log: from this machine's agent when the pod
// runs here, otherwise from the agent of the pod's node over HTTP.
func (b *backend) Logs(ctx context.Context, req api.LogRequest, w io.Writer) error {
	snap, err := b.cache.Snapshot(ctx)
	if err != nil {
		return err
	}
	var pod *corev1.Pod
	for _, p := range snap.Pods {
		if p.Name == req.Pod && (req.Namespace == "" || p.Namespace == req.Namespace) {
			pod = p
			break
		}
	}
	if pod == nil {
		return fmt.Errorf("%w: pod %s/%s", api.ErrNotFound, req.Namespace, req.Pod)
	}
	if req.Container == "" {
		if len(pod.Spec.Containers) != 1 {
			names := make([]string, len(pod.Spec.Containers))
			for i, c := range pod.Spec.Containers {
				names[i] = c.Name
			}
			return fmt.Errorf("%w: pod %s has %d containers: choose one with -c (%s)", api.ErrInvalid, pod.Name, len(names), strings.Join(names, ", "))
		}
		req.Container = pod.Spec.Containers[0].Name
	}
	if pod.Spec.NodeName == "" {
		return fmt.Errorf("%w: pod %s is not scheduled yet", api.ErrNotFound, pod.Name)
	}
	opt := nodes.LogOptions{Namespace: pod.Namespace, Pod: pod.Name, Container: req.Container,
		Follow: req.Follow, Previous: req.Previous, TailLines: req.TailLines}
	if b.agent != nil && b.agent.NodeName() == pod.Spec.NodeName {
		err := nodes.WriteLogs(ctx, b.agent.StateDir(), opt, w)
		if errors.Is(err, nodes.ErrLogNotFound) {
			return fmt.Errorf("%w: %w", api.ErrNotFound, err)
		}
		return err
	}
	return b.remoteLogs(ctx, snap, pod.Spec.NodeName, opt, w)
}

// remoteLogs proxies to the log endpoint the pod's node registered.
func (b *backend) remoteLogs(ctx context.Context, snap *store.Snapshot, nodeName string, opt nodes.LogOptions, w io.Writer) error {
	var addr string
	for _, n := range snap.Nodes {
		if n.Name != nodeName {
			continue
		}
		port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && port > 0 {
				addr = net.JoinHostPort(a.Address, strconv.Itoa(int(port)))
			}
		}
	}
	if addr == "" {
		return fmt.Errorf("%w: node %s serves no logs (start its agent with --listen)", api.ErrNotFound, nodeName)
	}
	q := url.Values{}
	if opt.Follow {
		q.Set("follow", "1")
	}
	if opt.Previous {
		q.Set("previous", "1")
	}
	if opt.TailLines > 0 {
		q.Set("tail", strconv.Itoa(opt.TailLines))
	}
	client, scheme := b.trust.logClient(nodeName)
	u := fmt.Sprintf("%s://%s/logs/%s/%s/%s?%s", scheme, addr, url.PathEscape(opt.Namespace), url.PathEscape(opt.Pod), url.PathEscape(opt.Container), q.Encode())
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return fmt.Errorf("logs from node %s: %w", nodeName, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: no log for %s/%s container %s on node %s", api.ErrNotFound, opt.Namespace, opt.Pod, opt.Container, nodeName)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("logs from node %s: %s", nodeName, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
