package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"bosun/api"
	"bosun/kube"
)

// describers describe one object of a kind (an API collection).
var describers = map[string]func(ctx context.Context, w io.Writer, c *client, namespace, name string, now time.Time) error{
	"pods":        describePod,
	"deployments": describeDeployment,
	"services":    describeService,
	"nodes":       describeNode,
}

func newDescribeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe pod|deployment|service|node NAME",
		Short: "Show one object in detail, with its recent events",
		Long: `Describe shows one object in detail: a pod's status, conditions, probe
results and containers (image and its pull, state, restarts, last
termination); a Deployment's replicas, rollout and pods; a Service's
address, ports and endpoints; a node's conditions, capacity and pods. Each
ends with the object's recent events (bosun events --for KIND/NAME).`,
		Example: `  bosun describe pod web-7d4b9-x2x9q
  bosun describe deployment web -n prod
  bosun describe svc web
  bosun describe node node-b`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError(cmd, "want a kind (pod, deployment, service, node) and a name")
			}
			return nil
		},
	}
	client := clientFlags(cmd)
	namespace := cmd.Flags().StringP("namespace", "n", "default", "namespace")
	cmd.RegisterFlagCompletionFunc("namespace", completeNames(client, "namespaces"))
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return []cobra.Completion{"pod", "deployment", "service", "node"}, cobra.ShellCompDirectiveNoFileComp
		case 1:
			if kind := kinds[args[0]]; describers[kind] != nil {
				return completeNames(client, kind)(cmd, nil, toComplete)
			}
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		kind := kinds[args[0]]
		d := describers[kind]
		if d == nil {
			return usageError(cmd, "describe %q: want pod, deployment, service or node", args[0])
		}
		return d(cmd.Context(), cmd.OutOrStdout(), newClient(client), *namespace, args[1], time.Now())
	}
	return cmd
}

// getOne fetches the object kind/name of namespace ("" for nodes) into out.
func getOne(ctx context.Context, c *client, kind, namespace, name string, out any) error {
	path := "/api/v1/" + kind + "/" + url.PathEscape(name)
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var list struct{ Items []json.RawMessage }
	if err := c.do(ctx, "GET", path, nil, &list); err != nil {
		return err
	}
	for _, raw := range list.Items {
		var meta struct {
			Metadata struct{ Namespace string } `json:"metadata"`
		}
		if json.Unmarshal(raw, &meta) == nil && (namespace == "" || meta.Metadata.Namespace == namespace) {
			return json.Unmarshal(raw, out)
		}
	}
	return fmt.Errorf("%s %q not found in namespace %s", strings.TrimSuffix(kind, "s"), name, namespace)
}

// field writes one "Label:   value" line, labels aligned.
func field(w io.Writer, label string, value any) {
	fmt.Fprintf(w, "%-16s%v\n", label+":", value)
}

func when(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.RFC1123), age(t, now))
}

func describePod(ctx context.Context, w io.Writer, c *client, namespace, name string, now time.Time) error {
	var p corev1.Pod
	if err := getOne(ctx, c, "pods", namespace, name, &p); err != nil {
		return err
	}
	sum := api.SummarizePod(&p)
	field(w, "Name", p.Name)
	field(w, "Namespace", p.Namespace)
	field(w, "Node", dash(p.Spec.NodeName))
	field(w, "Status", sum.Status)
	field(w, "Ready", fmt.Sprintf("%d/%d", sum.Ready, sum.Total))
	field(w, "Restarts", sum.Restarts)
	field(w, "IP", dash(p.Status.PodIP))
	if p.Status.StartTime != nil {
		field(w, "Started", when(p.Status.StartTime.Time, now))
	}
	field(w, "Labels", dash(labelString(p.Labels)))
	for _, o := range p.OwnerReferences {
		field(w, "Controlled By", o.Kind+"/"+o.Name)
	}
	if p.Status.Message != "" {
		field(w, "Message", p.Status.Message)
	}
	field(w, "Probes", probes(&p))
	if len(p.Status.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tMESSAGE")
		for _, cd := range p.Status.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", cd.Type, cd.Status, dash(cd.Reason), dash(cd.Message))
		}
		tw.Flush()
	}
	if len(p.Spec.InitContainers) > 0 {
		fmt.Fprintln(w, "Init Containers:")
		describeContainers(w, p.Spec.InitContainers, p.Status.InitContainerStatuses, now)
	}
	fmt.Fprintln(w, "Containers:")
	describeContainers(w, p.Spec.Containers, p.Status.ContainerStatuses, now)
	describeEvents(ctx, w, c, p.Namespace, "Pod", p.Name, now)
	return nil
}

// describeContainers writes each container: image and its pull, state,
// last termination, readiness, restarts and probes.
func describeContainers(w io.Writer, specs []corev1.Container, statuses []corev1.ContainerStatus, now time.Time) {
	byName := map[string]corev1.ContainerStatus{}
	for _, s := range statuses {
		byName[s.Name] = s
	}
	for _, ct := range specs {
		st, has := byName[ct.Name]
		fmt.Fprintf(w, "  %s:\n", ct.Name)
		sub := func(label string, v any) { fmt.Fprintf(w, "    %-16s%v\n", label+":", v) }
		sub("Image", ct.Image)
		sub("Image pull", imagePull(st, has))
		if len(ct.Ports) > 0 {
			var ports []string
			for _, p := range ct.Ports {
				ports = append(ports, fmt.Sprintf("%d/%s", p.ContainerPort, cmpOr(string(p.Protocol), "TCP")))
			}
			sub("Ports", strings.Join(ports, ", "))
		}
		if !has {
			sub("State", "not created yet")
			continue
		}
		sub("State", containerState(st.State, now))
		if st.LastTerminationState.Terminated != nil {
			sub("Last State", containerState(st.LastTerminationState, now))
		}
		sub("Ready", st.Ready)
		sub("Restarts", st.RestartCount)
		for _, pr := range []struct {
			name  string
			probe *corev1.Probe
		}{{"Startup", ct.StartupProbe}, {"Liveness", ct.LivenessProbe}, {"Readiness", ct.ReadinessProbe}} {
			if pr.probe != nil {
				sub(pr.name, probeString(pr.probe))
			}
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// imagePull is the state of a container's image: pulling, failed (and
// why), or pulled, from the container's status as the agent reports it.
func imagePull(st corev1.ContainerStatus, has bool) string {
	if !has {
		return "waiting for the node"
	}
	if wt := st.State.Waiting; wt != nil {
		r := wt.Reason
		switch {
		case strings.Contains(r, "ImagePull") || strings.Contains(r, "ErrImage") || r == "InvalidImageName":
			return "failed: " + r + cmpOr(": "+wt.Message, "")
		case r == "ContainerCreating" || r == "PodInitializing" || strings.Contains(r, "Pulling"):
			if st.ImageID == "" {
				return "pulling (or unpacking)" + msgSuffix(wt.Message)
			}
		}
	}
	if st.ImageID != "" {
		return "pulled " + st.ImageID
	}
	if st.State.Running != nil || st.State.Terminated != nil {
		return "pulled"
	}
	return "not pulled yet"
}

func msgSuffix(m string) string {
	if m == "" {
		return ""
	}
	return ": " + m
}

// containerState is a container state on one line.
func containerState(s corev1.ContainerState, now time.Time) string {
	switch {
	case s.Running != nil:
		return "Running since " + when(s.Running.StartedAt.Time, now)
	case s.Terminated != nil:
		t := s.Terminated
		out := fmt.Sprintf("Terminated: %s (exit code %d)", cmpOr(t.Reason, "Exited"), t.ExitCode)
		if t.Signal != 0 {
			out += fmt.Sprintf(", signal %d", t.Signal)
		}
		if !t.FinishedAt.IsZero() {
			out += ", finished " + when(t.FinishedAt.Time, now)
		}
		return out + msgSuffix(t.Message)
	case s.Waiting != nil:
		return "Waiting: " + cmpOr(s.Waiting.Reason, "-") + msgSuffix(s.Waiting.Message)
	}
	return "-"
}

// probeString is a probe as kubectl describe writes it.
func probeString(p *corev1.Probe) string {
	var what string
	switch h := p.ProbeHandler; {
	case h.HTTPGet != nil:
		what = fmt.Sprintf("http-get %s://:%s%s", strings.ToLower(cmpOr(string(h.HTTPGet.Scheme), "HTTP")), h.HTTPGet.Port.String(), h.HTTPGet.Path)
	case h.TCPSocket != nil:
		what = "tcp-socket :" + h.TCPSocket.Port.String()
	case h.GRPC != nil:
		what = fmt.Sprintf("grpc :%d", h.GRPC.Port)
	case h.Exec != nil:
		what = "exec " + strings.Join(h.Exec.Command, " ")
	}
	return fmt.Sprintf("%s delay=%ds timeout=%ds period=%ds #success=%d #failure=%d", what, p.InitialDelaySeconds,
		max(p.TimeoutSeconds, 1), max(p.PeriodSeconds, 10), max(p.SuccessThreshold, 1), max(p.FailureThreshold, 3))
}

// podsWhere lists the pods of namespace ("" all) that keep returns true for.
func podsWhere(ctx context.Context, c *client, namespace string, keep func(*corev1.Pod) bool) ([]corev1.Pod, error) {
	path := "/api/v1/pods"
	if namespace != "" {
		path += "?namespace=" + url.QueryEscape(namespace)
	}
	var list struct{ Items []corev1.Pod }
	if err := c.do(ctx, "GET", path, nil, &list); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for i := range list.Items {
		if keep(&list.Items[i]) {
			out = append(out, list.Items[i])
		}
	}
	return out, nil
}

func describePodTable(w io.Writer, pods []corev1.Pod, now time.Time) {
	if len(pods) == 0 {
		fmt.Fprintln(w, "Pods:           <none>")
		return
	}
	fmt.Fprintln(w, "Pods:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tREADY\tSTATUS\tRESTARTS\tNODE\tAGE")
	for i := range pods {
		p := &pods[i]
		s := api.SummarizePod(p)
		fmt.Fprintf(tw, "  %s\t%d/%d\t%s\t%d\t%s\t%s\n", p.Name, s.Ready, s.Total, s.Status, s.Restarts, dash(p.Spec.NodeName), age(p.CreationTimestamp.Time, now))
	}
	tw.Flush()
}

func matchesLabels(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func describeDeployment(ctx context.Context, w io.Writer, c *client, namespace, name string, now time.Time) error {
	var d appsv1.Deployment
	if err := getOne(ctx, c, "deployments", namespace, name, &d); err != nil {
		return err
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	field(w, "Name", d.Name)
	field(w, "Namespace", d.Namespace)
	field(w, "Created", when(d.CreationTimestamp.Time, now))
	field(w, "Labels", dash(labelString(d.Labels)))
	sel := map[string]string{}
	if d.Spec.Selector != nil {
		sel = d.Spec.Selector.MatchLabels
	}
	field(w, "Selector", dash(labelString(sel)))
	field(w, "Replicas", fmt.Sprintf("%d desired | %d updated | %d ready | %d available", want, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas))
	strategy := string(d.Spec.Strategy.Type)
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			strategy += ", max surge " + ru.MaxSurge.String()
		}
		if ru.MaxUnavailable != nil {
			strategy += ", max unavailable " + ru.MaxUnavailable.String()
		}
	}
	field(w, "Strategy", cmpOr(strategy, "RollingUpdate"))
	for k, v := range d.Annotations {
		if strings.HasPrefix(k, "bosun.dev/canary") {
			field(w, "Canary", k+"="+v)
		}
	}
	var st api.Status
	if err := c.do(ctx, "GET", "/api/v1/status", nil, &st); err == nil {
		for _, ds := range st.Deployments {
			if ds.Namespace == d.Namespace && ds.Name == d.Name {
				field(w, "Rollout", dash(ds.Rollout))
			}
		}
	}
	fmt.Fprintln(w, "Pod Template:")
	describeContainers(w, d.Spec.Template.Spec.Containers, nil, now)
	if len(d.Status.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tMESSAGE")
		for _, cd := range d.Status.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", cd.Type, cd.Status, dash(cd.Reason), dash(cd.Message))
		}
		tw.Flush()
	}
	pods, err := podsWhere(ctx, c, d.Namespace, func(p *corev1.Pod) bool { return matchesLabels(sel, p.Labels) })
	if err != nil {
		return err
	}
	describePodTable(w, pods, now)
	describeEvents(ctx, w, c, d.Namespace, "Deployment", d.Name, now)
	return nil
}

func describeService(ctx context.Context, w io.Writer, c *client, namespace, name string, now time.Time) error {
	var s corev1.Service
	if err := getOne(ctx, c, "services", namespace, name, &s); err != nil {
		return err
	}
	field(w, "Name", s.Name)
	field(w, "Namespace", s.Namespace)
	field(w, "Created", when(s.CreationTimestamp.Time, now))
	field(w, "Labels", dash(labelString(s.Labels)))
	field(w, "Selector", dash(labelString(s.Spec.Selector)))
	field(w, "Type", cmpOr(string(s.Spec.Type), "ClusterIP"))
	field(w, "IP", cmpOr(s.Spec.ClusterIP, "<none>"))
	field(w, "Ports", dash(kube.ServicePorts(&s)))
	var list struct{ Items []discoveryv1.EndpointSlice }
	path := "/api/v1/endpoints/" + url.PathEscape(s.Name) + "?namespace=" + url.QueryEscape(s.Namespace)
	if err := c.do(ctx, "GET", path, nil, &list); err != nil {
		return err
	}
	var ready, notReady []string
	for _, sl := range list.Items {
		for _, ep := range sl.Endpoints {
			who := strings.Join(ep.Addresses, ",")
			if ep.TargetRef != nil {
				who += " (" + ep.TargetRef.Name + ")"
			}
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				ready = append(ready, who)
			} else {
				notReady = append(notReady, who)
			}
		}
	}
	field(w, "Endpoints", cmpOr(strings.Join(ready, ", "), "<none>"))
	if len(notReady) > 0 {
		field(w, "Not Ready", strings.Join(notReady, ", "))
	}
	describeEvents(ctx, w, c, s.Namespace, "Service", s.Name, now)
	return nil
}

func describeNode(ctx context.Context, w io.Writer, c *client, _, name string, now time.Time) error {
	var n corev1.Node
	if err := getOne(ctx, c, "nodes", "", name, &n); err != nil {
		return err
	}
	field(w, "Name", n.Name)
	status := "NotReady"
	for _, cd := range n.Status.Conditions {
		if cd.Type == corev1.NodeReady && cd.Status == corev1.ConditionTrue {
			status = "Ready"
		}
	}
	field(w, "Status", status)
	field(w, "Unschedulable", n.Spec.Unschedulable)
	field(w, "Created", when(n.CreationTimestamp.Time, now))
	field(w, "Labels", dash(labelString(n.Labels)))
	taints := make([]string, len(n.Spec.Taints))
	for i, t := range n.Spec.Taints {
		taints[i] = t.ToString()
	}
	field(w, "Taints", cmpOr(strings.Join(taints, ", "), "<none>"))
	var addrs []string
	for _, a := range n.Status.Addresses {
		addrs = append(addrs, string(a.Type)+"="+a.Address)
	}
	field(w, "Addresses", dash(strings.Join(addrs, ", ")))
	field(w, "Pod CIDR", dash(n.Spec.PodCIDR))
	field(w, "Runtime", dash(n.Status.NodeInfo.ContainerRuntimeVersion))
	field(w, "Capacity", fmt.Sprintf("cpu %s, memory %s, pods %s", n.Status.Capacity.Cpu(), n.Status.Capacity.Memory(), n.Status.Capacity.Pods()))
	field(w, "Allocatable", fmt.Sprintf("cpu %s, memory %s, pods %s", n.Status.Allocatable.Cpu(), n.Status.Allocatable.Memory(), n.Status.Allocatable.Pods()))
	describeReservedPorts(w, &n) // describe_reserved.go
	if len(n.Status.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tSINCE\tREASON\tMESSAGE")
		for _, cd := range n.Status.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", cd.Type, cd.Status, age(cd.LastTransitionTime.Time, now), dash(cd.Reason), dash(cd.Message))
		}
		tw.Flush()
	}
	pods, err := podsWhere(ctx, c, "", func(p *corev1.Pod) bool { return p.Spec.NodeName == n.Name })
	if err != nil {
		return err
	}
	describePodTable(w, pods, now)
	describeEvents(ctx, w, c, "", "Node", n.Name, now)
	return nil
}
