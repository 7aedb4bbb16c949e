package proxy

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from what was computed (run with -update to accept):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			shown++
			b.WriteString("line " + itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
		}
	}
	return b.String()
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestBuild_golden shows the model of each case: the skeleton (the part
// that does not depend on the ports) once, then per case what the ports
// add: map elements, affinity sets, chains.
func TestBuild_golden(t *testing.T) {
	skel, err := Build("bosun", DefaultMasqueradeMark, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("model", "skeleton.json"), indentJSON(t, skel))
	fixed := map[string]bool{}
	for _, c := range skel.Chains {
		fixed[c.Name] = true
	}
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			rs, err := Build("bosun", DefaultMasqueradeMark, c.ports)
			if err != nil {
				t.Fatal(err)
			}
			var d struct {
				Elements map[string][]Element `json:"elements"`
				Sets     []Set                `json:"sets,omitempty"`
				Chains   []Chain              `json:"chains"`
			}
			d.Elements = map[string][]Element{}
			for _, s := range rs.Sets {
				switch {
				case s.Map && len(s.Elements) > 0:
					d.Elements[s.Name] = s.Elements
				case !s.Map:
					d.Sets = append(d.Sets, s)
				}
			}
			for _, ch := range rs.Chains {
				if !fixed[ch.Name] {
					d.Chains = append(d.Chains, ch)
				}
			}
			golden(t, filepath.Join("model", c.name+".json"), indentJSON(t, d))
		})
	}
}

func indentJSON(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestBuild_refusesBadPorts(t *testing.T) {
	ok := port("default", "web", "", corev1.ProtocolTCP, "10.96.0.10", 80, Group{Endpoints: []Endpoint{ep("10.244.0.2", 8080)}})
	cases := map[string]func(sp *ServicePort){
		"protocol":      func(sp *ServicePort) { sp.Protocol = corev1.ProtocolSCTP },
		"clusterIP":     func(sp *ServicePort) { sp.ClusterIP = netipV6() },
		"port":          func(sp *ServicePort) { sp.Port = 0 },
		"weight":        func(sp *ServicePort) { sp.Groups[0].Weight = -1 },
		"endpoint port": func(sp *ServicePort) { sp.Groups[0].Endpoints[0].Port = 0 },
		"duplicate ep":  func(sp *ServicePort) { sp.Groups = append(sp.Groups, sp.Groups[0]) },
		"affinity":      func(sp *ServicePort) { sp.AffinityTimeout = -1 },
		"missing name":  func(sp *ServicePort) { sp.Name = "" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			sp := ok
			sp.Groups = []Group{{Endpoints: []Endpoint{ep("10.244.0.2", 8080)}}}
			mutate(&sp)
			if _, err := Build("bosun", DefaultMasqueradeMark, []ServicePort{sp}); err == nil {
				t.Errorf("Build accepted %+v", sp)
			}
		})
	}
	t.Run("same VIP twice", func(t *testing.T) {
		other := ok
		other.Name = "other"
		if _, err := Build("bosun", DefaultMasqueradeMark, []ServicePort{ok, other}); err == nil || !strings.Contains(err.Error(), "also service port 0") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("same node port twice", func(t *testing.T) {
		a, b := ok, ok
		b.Name, b.ClusterIP = "other", b.ClusterIP.Next()
		a.NodePort, b.NodePort = 30000, 30000
		if _, err := Build("bosun", DefaultMasqueradeMark, []ServicePort{a, b}); err == nil || !strings.Contains(err.Error(), "node port 30000") {
			t.Errorf("err = %v", err)
		}
	})
}

func netipV6() netip.Addr { return netip.MustParseAddr("fd00::1") }

func TestBuild_independentOfInputOrder(t *testing.T) {
	var all []ServicePort
	for _, c := range goldenCases()[:7] {
		all = append(all, c.ports...)
	}
	want, err := Build("bosun", DefaultMasqueradeMark, all)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		ps := cloneState(all)
		r.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		for i := range ps {
			gs := ps[i].Groups
			r.Shuffle(len(gs), func(a, b int) { gs[a], gs[b] = gs[b], gs[a] })
			for _, g := range gs {
				r.Shuffle(len(g.Endpoints), func(a, b int) { g.Endpoints[a], g.Endpoints[b] = g.Endpoints[b], g.Endpoints[a] })
			}
		}
		got, err := Build("bosun", DefaultMasqueradeMark, ps)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatal("Build depends on the order of ports, groups or endpoints")
		}
	}
}

func TestHashedName_uniqueAndBounded(t *testing.T) {
	long := strings.Repeat("n", 63)
	sp := port(long, long, strings.Repeat("p", 15), corev1.ProtocolTCP, "10.96.0.1", 80)
	names := namesOf(&sp)
	seen := map[string]bool{}
	for i := range 300 {
		e := Endpoint{IP: netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i%250 + 1)}), Port: 65535}
		for _, n := range []string{names.endpoint(e), names.affinity(e)} {
			if len(n) > maxNameLen || seen[n] {
				t.Fatalf("name %q: too long or not unique", n)
			}
			seen[n] = true
		}
	}
	if n := hashedName(prefixService, strings.Repeat("x", 400)); len(n) != maxNameLen || !strings.HasSuffix(n, "...") {
		t.Errorf("long name cut to %d bytes: %q", len(n), n)
	}
}
