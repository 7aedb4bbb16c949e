package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

func init() {
	for _, name := range []string{"ingresses", "ingress", "ing"} {
		kinds[name] = "ingresses"
	}
	for _, name := range []string{"ingressclasses", "ingressclass"} {
		kinds[name] = "ingressclasses"
	}
	printers["ingresses"] = printIngresses
	printers["ingressclasses"] = printIngressClasses
}

// printIngresses prints kubectl's columns for Ingresses (CLASS, HOSTS,
// PORTS), with each rule's backends when wide.
func printIngresses(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []networkingv1.Ingress }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	head := "NAMESPACE\tNAME\tCLASS\tHOSTS\tPORTS\tAGE"
	if wide {
		head += "\tBACKENDS"
	}
	fmt.Fprintln(tw, head)
	for _, ing := range list.Items {
		class := "<none>"
		if ing.Spec.IngressClassName != nil {
			class = *ing.Spec.IngressClassName
		}
		var hosts []string
		for _, r := range ing.Spec.Rules {
			h := r.Host
			if h == "" {
				h = "*"
			}
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		ports := "80"
		if len(ing.Spec.TLS) > 0 {
			ports = "80, 443"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", ing.Namespace, ing.Name, class, dash(strings.Join(hosts, ",")), ports,
			age(ing.CreationTimestamp.Time, now))
		if wide {
			line += "\t" + dash(strings.Join(ingressBackends(&ing), ","))
		}
		fmt.Fprintln(tw, line)
	}
	return nil
}

// ingressBackends renders each path as host/path->service:port, and the
// default backend as *->service:port.
func ingressBackends(ing *networkingv1.Ingress) []string {
	backend := func(b *networkingv1.IngressBackend) string {
		if b == nil || b.Service == nil {
			return "?"
		}
		port := b.Service.Port.Name
		if port == "" {
			port = fmt.Sprint(b.Service.Port.Number)
		}
		return b.Service.Name + ":" + port
	}
	var out []string
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for i := range r.HTTP.Paths {
			p := &r.HTTP.Paths[i]
			out = append(out, r.Host+p.Path+"->"+backend(&p.Backend))
		}
	}
	if ing.Spec.DefaultBackend != nil {
		out = append(out, "*->"+backend(ing.Spec.DefaultBackend))
	}
	return out
}

// printIngressClasses prints kubectl's columns for IngressClasses.
func printIngressClasses(tw io.Writer, raw json.RawMessage, wide bool, now time.Time) error {
	var list struct{ Items []networkingv1.IngressClass }
	if err := json.Unmarshal(raw, &list); err != nil {
		return err
	}
	fmt.Fprintln(tw, "NAME\tCONTROLLER\tDEFAULT\tAGE")
	for _, c := range list.Items {
		def := "false"
		if c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			def = "true"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, dash(c.Spec.Controller), def, age(c.CreationTimestamp.Time, now))
	}
	return nil
}
