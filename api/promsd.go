package api

import (
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"bosun/kube"
)

// The pod annotations that ask Prometheus to scrape a pod, by the
// convention of Prometheus's own Kubernetes example configuration.
const (
	// AnnotationPromScrape: "true" makes the pod a target.
	AnnotationPromScrape = "prometheus.io/scrape"
	// AnnotationPromPort is the port to scrape; without it every TCP port
	// the pod's containers declare is a target.
	AnnotationPromPort = "prometheus.io/port"
	// AnnotationPromPath is the metrics path (__metrics_path__), default
	// the scrape job's (/metrics).
	AnnotationPromPath = "prometheus.io/path"
	// AnnotationPromScheme is http or https (__scheme__), default the job's.
	AnnotationPromScheme = "prometheus.io/scheme"
)

// TargetGroup is one entry of Prometheus HTTP service discovery's answer
// (https://prometheus.io/docs/prometheus/latest/http_sd/).
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// promTargets answers GET /api/v1/prometheus/targets[?namespace=NS] for
// Prometheus's http_sd_configs: a target group per pod to scrape (see
// PromTargets), from the replica's cached State like every read.
func (s *Server) promTargets(w http.ResponseWriter, r *http.Request) {
	snap, err := s.cfg.State.Snapshot(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	pods := snap.Pods
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		pods = nil
		for _, p := range snap.Pods {
			if p.Namespace == ns {
				pods = append(pods, p)
			}
		}
	}
	writeJSON(w, http.StatusOK, PromTargets(pods))
}

// PromTargets returns the target groups Prometheus should scrape: one per
// running pod with an IP whose annotation prometheus.io/scrape is "true",
// sorted by namespace and name. Its targets are IP:prometheus.io/port, or
// IP:port for each TCP port the containers declare when the annotation is
// absent; a pod with an invalid port annotation, or no port at all, is left
// out. Its labels are namespace, pod, node, deployment (the controlling
// Deployment, "" for other pods), track (label bosun.dev/track, "" when
// absent), every pod label as label_<name> (characters Prometheus does not
// allow in a label name become "_"; of two labels that become one, the
// first by name wins), and __metrics_path__ and __scheme__ from
// prometheus.io/path and prometheus.io/scheme when set. It never returns
// nil, so the answer is [] rather than null.
func PromTargets(pods []*corev1.Pod) []TargetGroup {
	groups := []TargetGroup{}
	for _, p := range pods {
		if p.Annotations[AnnotationPromScrape] != "true" || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			continue
		}
		ports := scrapePorts(p)
		if len(ports) == 0 {
			continue
		}
		g := TargetGroup{Labels: map[string]string{
			"namespace":  p.Namespace,
			"pod":        p.Name,
			"node":       p.Spec.NodeName,
			"deployment": deploymentOf(p),
			"track":      p.Labels[kube.LabelTrack],
		}}
		for _, port := range ports {
			g.Targets = append(g.Targets, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)))
		}
		if path := p.Annotations[AnnotationPromPath]; path != "" {
			g.Labels["__metrics_path__"] = path
		}
		if scheme := p.Annotations[AnnotationPromScheme]; scheme == "http" || scheme == "https" {
			g.Labels["__scheme__"] = scheme
		}
		keys := make([]string, 0, len(p.Labels))
		for k := range p.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := "label_" + sanitizeLabelName(k)
			if _, taken := g.Labels[name]; !taken {
				g.Labels[name] = p.Labels[k]
			}
		}
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i].Labels, groups[j].Labels
		if a["namespace"] != b["namespace"] {
			return a["namespace"] < b["namespace"]
		}
		return a["pod"] < b["pod"]
	})
	return groups
}

// scrapePorts are the ports to scrape on p: its prometheus.io/port, or the
// TCP ports its containers declare; none when the annotation is invalid.
func scrapePorts(p *corev1.Pod) []int {
	if s, ok := p.Annotations[AnnotationPromPort]; ok {
		port, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || port < 1 || port > 65535 {
			return nil
		}
		return []int{port}
	}
	var ports []int
	seen := map[int32]bool{}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) && cp.ContainerPort > 0 && !seen[cp.ContainerPort] {
				seen[cp.ContainerPort] = true
				ports = append(ports, int(cp.ContainerPort))
			}
		}
	}
	return ports
}

// deploymentOf names p's Deployment: its controller reference, which the
// planner gives every pod of a Deployment.
func deploymentOf(p *corev1.Pod) string {
	if kind, name := kube.Controller(p); kind == "Deployment" {
		return name
	}
	return ""
}

// sanitizeLabelName makes s a valid Prometheus label name suffix: every
// character outside [a-zA-Z0-9_] becomes "_" (the name is prefixed with
// "label_", so a leading digit is fine).
func sanitizeLabelName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
