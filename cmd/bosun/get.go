package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"

	"bosun/api"
	"bosun/kube"
	"bosun/nodes"
)

// kinds maps what users type to the API's collection names.
var kinds = map[string]string{
	"pods": "pods", "pod": "pods", "po": "pods",
	"deployments": "deployments", "deployment": "deployments", "deploy": "deployments",
	"services": "services", "service": "services", "svc": "services",
	"nodes": "nodes", "node": "nodes", "no": "nodes",
	"configmaps": "configmaps", "configmap": "configmaps", "cm": "configmaps",
	"secrets": "secrets", "secret": "secrets",
	"namespaces": "namespaces", "namespace": "namespaces", "ns": "namespaces",
	"jobs": "jobs", "job": "jobs",
	"cronjobs": "cronjobs", "cronjob": "cronjobs", "cj": "cronjobs",
	"endpoints": "endpoints", "endpoint": "endpoints", "ep": "endpoints",
	"endpointslices": "endpoints", "endpointslice": "endpoints",
	"daemonsets": "daemonsets", "daemonset": "daemonsets", "ds": "daemonsets",
	"statefulsets": "statefulsets", "statefulset": "statefulsets", "sts": "statefulsets",
}

// kindList names the collections for usage messages.
const kindList = "pods, deployments, statefulsets, daemonsets, services, endpoints, ingresses, ingressclasses, nodes, configmaps, secrets, persistentvolumeclaims, namespaces, jobs, cronjobs"

func newGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List objects of a kind, or show one",
		Long: `Get lists the objects of a kind as the cluster runs them, or shows one.

KIND is one of ` + kindList + `
(or a short name: po, deploy, sts, ds, svc, ep, ing, no, cm, pvc, ns, cj). Secrets show their
keys and sizes, never a value. Without -n, every namespace is listed.
-w keeps watching and prints a line for each object that changes.`,
		Example: `  bosun get pods
  bosun get pods -n prod -o wide
  bosun get deployment web -o yaml
  bosun get pods -o name
  bosun get pods -w`,
		Args: cobra.RangeArgs(1, 2),
	}
	client := clientFlags(cmd)
	output := outputFlag(cmd, "json", "yaml", "wide", "name")
	ns := namespaceFlags(cmd, client, "")
	watch := cmd.Flags().BoolP("watch", "w", false, "after the list, watch: print each object that changes (as the server's watch tells, or checked every second)")
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return kindCompletions(), cobra.ShellCompDirectiveNoFileComp
		case 1:
			if kind, ok := kinds[args[0]]; ok {
				return completeNames(client, kind)(cmd, nil, toComplete)
			}
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		kind, ok := kinds[args[0]]
		if !ok {
			return usageError(cmd, "unknown kind %q (known: %s)", args[0], kindList)
		}
		if err := checkOutput(cmd, *output, "json", "yaml", "wide", "name"); err != nil {
			return err
		}
		namespace, err := ns.resolve(cmd)
		if err != nil {
			return err
		}
		name := ""
		if len(args) == 2 {
			name = args[1]
		}
		g := &getter{c: newClient(client), kind: kind, name: name, namespace: namespace, output: *output}
		if *watch {
			return g.watch(cmd.Context(), cmd.OutOrStdout(), time.Second)
		}
		return g.print(cmd.Context(), cmd.OutOrStdout())
	}
	return cmd
}

// getter is one `bosun get`.
type getter struct {
	c                     *client
	kind, name, namespace string
	output                string
}

// path is the API path of the objects.
func (g *getter) path() string {
	path := "/api/v1/" + g.kind
	if g.name != "" {
		path += "/" + url.PathEscape(g.name)
	}
	if g.namespace != "" {
		path += "?namespace=" + url.QueryEscape(g.namespace)
	}
	return path
}

func (g *getter) fetch(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := g.c.do(ctx, "GET", g.path(), nil, &raw)
	return raw, err
}

func (g *getter) print(ctx context.Context, stdout io.Writer) error {
	raw, err := g.fetch(ctx)
	if err != nil {
		return err
	}
	// A named object prints as itself, as kubectl prints it; but a
	// Service's endpoints are a list of EndpointSlices (zero or more).
	if g.name != "" && g.kind != "endpoints" && (g.output == "json" || g.output == "yaml") {
		var list struct{ Items []json.RawMessage }
		if err := json.Unmarshal(raw, &list); err != nil || len(list.Items) != 1 {
			return fmt.Errorf("decode %s %s: %v", g.kind, g.name, err)
		}
		raw = list.Items[0]
	}
	switch g.output {
	case "json", "yaml":
		return printRaw(stdout, g.output, raw)
	case "name":
		items, err := listItems(raw)
		if err != nil {
			return err
		}
		for _, it := range items {
			fmt.Fprintln(stdout, it.name)
		}
		return nil
	}
	return printTable(stdout, g.kind, raw, g.output == "wide", time.Now())
}

// printRaw prints a JSON document as indented JSON or as YAML.
func printRaw(w io.Writer, format string, raw json.RawMessage) error {
	if format == "yaml" {
		b, err := yaml.JSONToYAML(raw)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := out.WriteTo(w)
	return err
}

// printOutput prints v as JSON or YAML (-o json, -o yaml).
func printOutput(w io.Writer, format string, v any) error {
	if format == "yaml" {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return printJSON(w, v)
}

func printTable(w io.Writer, kind string, raw json.RawMessage, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	defer tw.Flush()
	print, ok := printers[kind]
	if !ok {
		return fmt.Errorf("no table for %s", kind)
	}
	return print(tw, raw, wide, now)
}

// printers print a collection as a table, one per kind.
var printers = map[string]func(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error{
	"pods":        printPods,
	"deployments": printDeployments,
	"services":    printServices,
	"endpoints":   printEndpoints,
	"nodes":       printNodes,
	"configmaps":  printConfigMaps,
	"secrets":     printSecrets,
	"namespaces":  printNamespaces,
	"jobs":        printJobs,
	"cronjobs":    printCronJobs,
}

func printPods(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []corev1.Pod }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE"
	if wide {
		head += "\tIP\tNODE\tPROBES"
	}
	fmt.Fprintln(tw, head)
	for _, p := range list.Items {
		sum := api.SummarizePod(&p)
		line := fmt.Sprintf("%s\t%s\t%d/%d\t%s\t%d\t%s", p.Namespace, p.Name, sum.Ready, sum.Total,
			sum.Status, sum.Restarts, age(p.CreationTimestamp.Time, now))
		if wide {
			line += fmt.Sprintf("\t%s\t%s\t%s", dash(p.Status.PodIP), dash(p.Spec.NodeName), probes(&p))
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

func printDeployments(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []appsv1.Deployment }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tREADY\tUP-TO-DATE\tAVAILABLE"
	if wide {
		head += "\tIMAGES\tSELECTOR"
	}
	fmt.Fprintln(tw, head)
	for _, d := range list.Items {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		line := fmt.Sprintf("%s\t%s\t%d/%d\t%d\t%d", d.Namespace, d.Name, d.Status.ReadyReplicas, want,
			d.Status.UpdatedReplicas, d.Status.AvailableReplicas)
		if wide {
			var images []string
			for _, c := range d.Spec.Template.Spec.Containers {
				images = append(images, c.Image)
			}
			sel := ""
			if d.Spec.Selector != nil {
				sel = labelString(d.Spec.Selector.MatchLabels)
			}
			line += "\t" + strings.Join(images, ",") + "\t" + sel
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

// printServices prints kubectl's columns for Services: TYPE, CLUSTER-IP
// ("None" for a headless one) and PORT(S) (80/TCP, 80:30080/TCP).
func printServices(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []corev1.Service }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tTYPE\tCLUSTER-IP\tPORT(S)\tAGE"
	if wide {
		head += "\tSELECTOR"
	}
	fmt.Fprintln(tw, head)
	for _, s := range list.Items {
		ip := s.Spec.ClusterIP
		if ip == "" {
			ip = "<none>"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", s.Namespace, s.Name, s.Spec.Type, ip, kube.ServicePorts(&s),
			age(s.CreationTimestamp.Time, now))
		if wide {
			line += "\t" + dash(labelString(s.Spec.Selector))
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

// maxEndpoints is how many endpoints a row of `get endpoints` lists
// before " + N more...", as kubectl does; -o wide lists them all.
const maxEndpoints = 3

// printEndpoints prints one row per Service from its EndpointSlices, as
// kubectl prints Endpoints: the ready addresses with their ports, then
// how many endpoints are not ready.
func printEndpoints(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []discoveryv1.EndpointSlice }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	type row struct {
		ready    []string
		notReady int
	}
	rows := map[string]*row{}
	var order []string
	for _, sl := range list.Items {
		key := sl.Namespace + "\t" + sl.Labels[discoveryv1.LabelServiceName]
		r := rows[key]
		if r == nil {
			r = &row{}
			rows[key] = r
			order = append(order, key)
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready == nil || !*ep.Conditions.Ready {
				r.notReady++
				continue
			}
			for _, a := range ep.Addresses {
				if len(sl.Ports) == 0 {
					r.ready = append(r.ready, a)
				}
				for _, p := range sl.Ports {
					if p.Port != nil {
						r.ready = append(r.ready, net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
					}
				}
			}
		}
	}
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tENDPOINTS\tNOT READY")
	for _, key := range order {
		r := rows[key]
		eps := r.ready
		more := ""
		if !wide && len(eps) > maxEndpoints {
			more = fmt.Sprintf(" + %d more...", len(eps)-maxEndpoints)
			eps = eps[:maxEndpoints]
		}
		shown := strings.Join(eps, ",") + more
		if shown == "" {
			shown = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\n", key, shown, r.notReady)
	}
	return nil
}

func printNodes(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []corev1.Node }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	// SINCE is how long the node has been in its STATUS (its Ready
	// condition's last transition, as the leader recorded it).
	head := "NAME\tSTATUS\tSINCE\tPOD-CIDR\tCPU\tMEMORY\tPODS\tAGE"
	if wide {
		head += "\tINTERNAL-IP\tRUNTIME\tTAINTS\tLABELS"
	}
	fmt.Fprintln(tw, head)
	for _, n := range list.Items {
		status, since := "NotReady", time.Time{}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				since = c.LastTransitionTime.Time
				if c.Status == corev1.ConditionTrue {
					status = "Ready"
				}
			}
		}
		if n.Spec.Unschedulable {
			status += ",SchedulingDisabled"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", n.Name, status, age(since, now), dash(n.Spec.PodCIDR), n.Status.Allocatable.Cpu(),
			n.Status.Allocatable.Memory(), n.Status.Allocatable.Pods(), age(n.CreationTimestamp.Time, now))
		if wide {
			ip := ""
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					ip = a.Address
				}
			}
			taints := make([]string, len(n.Spec.Taints))
			for i, t := range n.Spec.Taints {
				taints[i] = t.ToString()
			}
			line += fmt.Sprintf("\t%s\t%s\t%s\t%s", dash(ip), dash(n.Status.NodeInfo.ContainerRuntimeVersion),
				dash(strings.Join(taints, ",")), labelString(n.Labels))
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

func printConfigMaps(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []corev1.ConfigMap }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tDATA\tAGE")
	for _, c := range list.Items {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", c.Namespace, c.Name, len(c.Data)+len(c.BinaryData), age(c.CreationTimestamp.Time, now))
	}
	return nil
}

// printSecrets shows keys and sizes: the API never sends a value.
func printSecrets(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []api.SecretSummary }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tTYPE\tKEYS\tAGE")
	for _, s := range list.Items {
		keys := make([]string, len(s.Keys))
		for i, k := range s.Keys {
			keys[i] = fmt.Sprintf("%s(%dB)", k.Name, k.Size)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Type, dash(strings.Join(keys, ",")), age(s.CreationTimestamp.Time, now))
	}
	return nil
}

func printNamespaces(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []corev1.Namespace }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAME\tSTATUS\tIN GIT\tAGE"
	if wide {
		head += "\tLABELS"
	}
	fmt.Fprintln(tw, head)
	for _, n := range list.Items {
		inGit := "yes"
		if n.Annotations[api.AnnotationImplied] == "true" {
			inGit = "no"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", n.Name, n.Status.Phase, inGit, age(n.CreationTimestamp.Time, now))
		if wide {
			line += "\t" + dash(labelString(n.Labels))
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

// printJobs prints kubectl's columns for Jobs.
func printJobs(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []batchv1.Job }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tSTATUS\tCOMPLETIONS\tDURATION\tAGE"
	if wide {
		head += "\tCONTAINERS\tIMAGES"
	}
	fmt.Fprintln(tw, head)
	for _, j := range list.Items {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", j.Namespace, j.Name, jobStatus(&j), completions(&j),
			jobDuration(&j, now), age(j.CreationTimestamp.Time, now))
		if wide {
			var names, images []string
			for _, c := range j.Spec.Template.Spec.Containers {
				names, images = append(names, c.Name), append(images, c.Image)
			}
			line += "\t" + dash(strings.Join(names, ",")) + "\t" + dash(strings.Join(images, ","))
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

// jobStatus is the STATUS column, as kubectl derives it.
func jobStatus(j *batchv1.Job) string {
	has := func(t batchv1.JobConditionType) bool {
		for _, c := range j.Status.Conditions {
			if c.Type == t && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}
	switch {
	case has(batchv1.JobComplete):
		return "Complete"
	case has(batchv1.JobFailed):
		return "Failed"
	case has(batchv1.JobSuspended):
		return "Suspended"
	}
	return "Running"
}

// completions is the COMPLETIONS column: succeeded/completions, or for a
// work queue succeeded/1 of parallelism.
func completions(j *batchv1.Job) string {
	if c := j.Spec.Completions; c != nil {
		return fmt.Sprintf("%d/%d", j.Status.Succeeded, *c)
	}
	if p := j.Spec.Parallelism; p != nil && *p > 1 {
		return fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, *p)
	}
	return fmt.Sprintf("%d/1", j.Status.Succeeded)
}

// jobDuration is the DURATION column: from start to completion, or to now.
func jobDuration(j *batchv1.Job, now time.Time) string {
	if j.Status.StartTime == nil {
		return "-"
	}
	end := now
	if j.Status.CompletionTime != nil {
		end = j.Status.CompletionTime.Time
	}
	return age(j.Status.StartTime.Time, end)
}

// printCronJobs prints kubectl's columns for CronJobs.
func printCronJobs(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []batchv1.CronJob }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tSCHEDULE\tTIMEZONE\tSUSPEND\tACTIVE\tLAST SCHEDULE\tAGE"
	if wide {
		head += "\tCONTAINERS\tIMAGES"
	}
	fmt.Fprintln(tw, head)
	for _, cj := range list.Items {
		tz, last := "<none>", "<none>"
		if cj.Spec.TimeZone != nil {
			tz = *cj.Spec.TimeZone
		}
		if t := cj.Status.LastScheduleTime; t != nil {
			last = age(t.Time, now)
		}
		suspend := cj.Spec.Suspend != nil && *cj.Spec.Suspend
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%v\t%d\t%s\t%s", cj.Namespace, cj.Name, cj.Spec.Schedule, tz, suspend,
			len(cj.Status.Active), last, age(cj.CreationTimestamp.Time, now))
		if wide {
			var names, images []string
			for _, c := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
				names, images = append(names, c.Name), append(images, c.Image)
			}
			line += "\t" + dash(strings.Join(names, ",")) + "\t" + dash(strings.Join(images, ","))
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

// probes is the PROBES column: the agent's summary of the pod's probes.
func probes(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == nodes.ConditionProbes {
			if c.Status == corev1.ConditionTrue {
				return "ok"
			}
			return dash(c.Message)
		}
	}
	return "-"
}

func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}
