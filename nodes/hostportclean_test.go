package nodes

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestHostPortRulesOf(t *testing.T) {
	listing := `-N CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"bosune2e28\" id: \"bosun-default-mapped-d42b1cf9\"" -m multiport --dports 31230 -j CNI-DN-4a219b9d13a33989bee30
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"bosune2e2\" id: \"bosun-default-web-1\"" -m multiport --dports 31231 -j CNI-DN-1111
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"bosune2e28\" id: \"bosun-default-dns-2\"" -m multiport --dports 53 -j CNI-DN-2222
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"other\" id: \"x bosune2e28\"" -j CNI-DN-3333
`
	got := hostPortRulesOf(listing, "bosune2e28")
	if len(got) != 2 {
		t.Fatalf("rules of bosune2e28: %+v; want 2 (not bosune2e2's, not another network's naming it in its id)", got)
	}
	want := []string{"CNI-HOSTPORT-DNAT", "-p", "tcp", "-m", "comment", "--comment", `dnat name: "bosune2e28" id: "bosun-default-mapped-d42b1cf9"`,
		"-m", "multiport", "--dports", "31230", "-j", "CNI-DN-4a219b9d13a33989bee30"}
	if !slices.Equal(got[0].spec, want) || got[0].target != "CNI-DN-4a219b9d13a33989bee30" {
		t.Errorf("first rule: %q -> %s", got[0].spec, got[0].target)
	}
	if got[1].target != "CNI-DN-2222" {
		t.Errorf("second rule's chain: %s", got[1].target)
	}
	if r := hostPortRulesOf("", "x"); len(r) != 0 {
		t.Errorf("empty listing: %v", r)
	}
}

// On the kernel's iptables: rules written as portmap writes them, for two
// networks; cleaning one network removes its rule and chain and leaves
// the other's.
func TestCleanupHostPorts(t *testing.T) {
	ipt, err := exec.LookPath("iptables")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs root and iptables: %v", err)
		}
		t.Skip("needs root and iptables")
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(ipt, append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput()
		return string(out), err
	}
	suffix := strconv.Itoa(os.Getpid() % 100000)
	mine, theirs := "bosunhpc"+suffix, "bosunhpd"+suffix
	run("-N", hostPortChain) // portmap's; may exist already
	for _, n := range []string{mine, theirs} {
		chain := "CNI-DN-t" + n
		if out, err := run("-N", chain); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		comment := `dnat name: "` + n + `" id: "bosun-default-web-` + n + `"`
		if out, err := run("-A", hostPortChain, "-p", "tcp", "-m", "comment", "--comment", comment, "-m", "multiport", "--dports", "1", "-j", chain); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	t.Cleanup(func() {
		CleanupHostPorts(theirs)
		run("-X", "CNI-DN-t"+mine)
		run("-X", "CNI-DN-t"+theirs)
	})
	if err := CleanupHostPorts(mine); err != nil {
		t.Fatal(err)
	}
	listing, _ := run("-S", hostPortChain)
	if strings.Contains(listing, `\"`+mine+`\"`) || !strings.Contains(listing, `\"`+theirs+`\"`) {
		t.Errorf("after cleaning %s:\n%s", mine, listing)
	}
	if _, err := run("-S", "CNI-DN-t"+mine); err == nil {
		t.Errorf("chain CNI-DN-t%s is still there", mine)
	}
	if err := CleanupHostPorts(mine); err != nil {
		t.Errorf("cleaning again: %v", err)
	}
}
