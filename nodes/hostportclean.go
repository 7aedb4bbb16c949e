package nodes

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/shlex"
)

// The CNI portmap plugin forwards a pod's hostPorts with iptables (nat)
// rules: one rule per pod in the chain CNI-HOSTPORT-DNAT, commented with
// the network's name and the sandbox, jumping to a chain CNI-DN-<hash> of
// the pod's own. The plugin removes them when the pod's network is torn
// down. A pod whose network is never torn down (its node reset, its
// containers killed outside the agent) leaves them behind, and they go on
// capturing every connection to that port on the machine, local ones
// included, to an address nobody answers. CleanupHostPorts removes them.

// hostPortChain is portmap's chain of every pod's forwarding rules.
const hostPortChain = "CNI-HOSTPORT-DNAT"

// CleanupHostPorts removes the portmap plugin's forwarding rules of the
// pods of network (the bridge's name), and their chains. No rules (or no
// iptables, or portmap never ran): nothing to do. Only for a node that is
// reset: while its pods live, their rules must stay.
func CleanupHostPorts(network string) error {
	ipt, err := exec.LookPath("iptables")
	if err != nil {
		return nil // no iptables: portmap never ran here
	}
	out, err := exec.Command(ipt, "-w", "-t", "nat", "-S", hostPortChain).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("No chain")) || bytes.Contains(out, []byte("does not exist")) {
			return nil
		}
		return fmt.Errorf("iptables -t nat -S %s: %v: %s", hostPortChain, err, bytes.TrimSpace(out))
	}
	var errs []error
	for _, rule := range hostPortRulesOf(string(out), network) {
		if out, err := exec.Command(ipt, append([]string{"-w", "-t", "nat", "-D"}, rule.spec...)...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("iptables -t nat -D %s: %v: %s", strings.Join(rule.spec, " "), err, bytes.TrimSpace(out)))
			continue
		}
		if rule.target == "" {
			continue
		}
		for _, op := range []string{"-F", "-X"} {
			if out, err := exec.Command(ipt, "-w", "-t", "nat", op, rule.target).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("iptables -t nat %s %s: %v: %s", op, rule.target, err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

// hostPortRule is one of portmap's forwarding rules: its spec as
// `iptables -D` takes it (chain first), and the pod's chain it jumps to.
type hostPortRule struct {
	spec   []string
	target string
}

// hostPortRulesOf picks, from `iptables -t nat -S CNI-HOSTPORT-DNAT`'s
// output, the rules portmap wrote for network: their comment names it
// (`dnat name: "<network>" id: "<sandbox>"`). Lines it cannot split are
// skipped.
func hostPortRulesOf(listing, network string) []hostPortRule {
	mark := `dnat name: "` + network + `"`
	var out []hostPortRule
	for _, line := range strings.Split(listing, "\n") {
		if !strings.HasPrefix(line, "-A "+hostPortChain+" ") || !strings.Contains(line, `\"`+network+`\"`) {
			continue
		}
		args, err := shlex.Split(line)
		if err != nil || len(args) < 2 {
			continue
		}
		ours := false
		var target string
		for i, a := range args {
			if a == "--comment" && i+1 < len(args) && strings.HasPrefix(args[i+1], mark) {
				ours = true
			}
			if a == "-j" && i+1 < len(args) && strings.HasPrefix(args[i+1], "CNI-DN-") {
				target = args[i+1]
			}
		}
		if ours {
			out = append(out, hostPortRule{spec: args[1:], target: target})
		}
	}
	return out
}
