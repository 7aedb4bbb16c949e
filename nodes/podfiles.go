package nodes

// The files a pod is given by the agent (pure): /etc/resolv.conf by the
// pod's dnsPolicy and dnsConfig, /etc/hosts with its hostAliases, and its
// hostname, as kubelet writes them.

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Kubelet's limits on a pod's resolv.conf.
const (
	maxDNSNameservers = 3
	maxDNSSearches    = 32
)

// dnsSettings is the content of a resolv.conf.
type dnsSettings struct {
	Nameservers []string
	Searches    []string
	Options     []string // "name" or "name:value"
}

// parseResolvConf reads a resolv.conf (the node's, for dnsPolicy Default):
// nameserver lines, the last search (or domain) line and options.
func parseResolvConf(content string) dnsSettings {
	var d dnsSettings
	for _, line := range strings.Split(content, "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				d.Nameservers = append(d.Nameservers, f[1])
			}
		case "search", "domain":
			d.Searches = slices.Clone(f[1:])
		case "options":
			d.Options = append(d.Options, f[1:]...)
		}
	}
	return d
}

// clusterDNS is what the agent knows of the cluster's DNS.
type clusterDNS struct {
	Server string // the nameserver pods use
	Domain string // cluster.local
}

// podDNS is the pod's resolv.conf settings: ClusterFirst (the default, and
// ClusterFirstWithHostNet, as pods never use the host network) gives the
// cluster's nameserver, its search path and ndots:5; Default gives the
// node's resolv.conf (host); None gives nothing. dnsConfig is then merged
// in: nameservers and searches appended without duplicates, options
// replacing options of the same name. Lists are cut to kubelet's limits.
func podDNS(spec *corev1.PodSpec, namespace string, cluster clusterDNS, host dnsSettings) dnsSettings {
	var d dnsSettings
	switch spec.DNSPolicy {
	case corev1.DNSNone:
	case corev1.DNSDefault:
		d = dnsSettings{Nameservers: slices.Clone(host.Nameservers), Searches: slices.Clone(host.Searches), Options: slices.Clone(host.Options)}
	default:
		dom := cluster.Domain
		d = dnsSettings{
			Nameservers: []string{cluster.Server},
			Searches:    []string{namespace + ".svc." + dom, "svc." + dom, dom},
			Options:     []string{"ndots:5"},
		}
	}
	if dc := spec.DNSConfig; dc != nil {
		for _, ns := range dc.Nameservers {
			if !slices.Contains(d.Nameservers, ns) {
				d.Nameservers = append(d.Nameservers, ns)
			}
		}
		for _, s := range dc.Searches {
			if !slices.Contains(d.Searches, s) {
				d.Searches = append(d.Searches, s)
			}
		}
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			i := slices.IndexFunc(d.Options, func(have string) bool {
				name, _, _ := strings.Cut(have, ":")
				return name == o.Name
			})
			if i >= 0 {
				d.Options[i] = opt
			} else {
				d.Options = append(d.Options, opt)
			}
		}
	}
	if len(d.Nameservers) > maxDNSNameservers {
		d.Nameservers = d.Nameservers[:maxDNSNameservers]
	}
	if len(d.Searches) > maxDNSSearches {
		d.Searches = d.Searches[:maxDNSSearches]
	}
	return d
}

// resolvConf renders the settings as a resolv.conf.
func (d dnsSettings) resolvConf() string {
	var b strings.Builder
	for _, ns := range d.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(d.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Searches, " "))
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	return b.String()
}

// hostsFile is a pod's /etc/hosts, laid out as kubelet's: localhost, the
// IPv6 names, the pod's own address and name (with its domain, when it has
// one, the fully qualified name first), then its hostAliases.
func hostsFile(hostname, domain, podIP string, aliases []corev1.HostAlias) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (bosun).\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	switch {
	case podIP == "":
	case domain != "":
		fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", podIP, hostname, domain, hostname)
	default:
		fmt.Fprintf(&b, "%s\t%s\n", podIP, hostname)
	}
	if len(aliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range aliases {
			if len(a.Hostnames) == 0 {
				continue
			}
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.String()
}

// podHostname is the pod's hostname: spec.hostname when set, else its
// name cut to a DNS label.
func podHostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	name := pod.Name
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	return name
}

// podHostDomain is the domain of a pod of namespace with spec, as kubelet
// gives it: <subdomain>.<namespace>.svc.<clusterDomain> when spec.subdomain
// is set, else "". DNS answers <hostname>.<domain> while a headless Service
// named subdomain selects the pod.
func podHostDomain(spec *corev1.PodSpec, namespace, clusterDomain string) string {
	if spec.Subdomain == "" {
		return ""
	}
	return spec.Subdomain + "." + namespace + ".svc." + strings.TrimSuffix(clusterDomain, ".")
}
