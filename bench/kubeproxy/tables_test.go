package kubeproxy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// tables lists the names of the ip-family tables nft sees from the
// calling thread.
func tables() ([]string, error) {
	out, err := nft("-j", "list", "tables", "ip")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []struct {
			Table *struct{ Name string } `json:"table"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft -j list tables: %w", err)
	}
	var names []string
	for _, o := range doc.Nftables {
		if o.Table != nil {
			names = append(names, o.Table.Name)
		}
	}
	return names, nil
}

// tableStats counts what a table holds, as `nft -j list table` shows it.
type tableStats struct {
	Chains, Rules, Sets, Elements int
	Bytes                         int // of `nft list table`'s text
}

func statsOf(table string) (tableStats, error) {
	out, err := nft("-j", "list", "table", "ip", table)
	if err != nil {
		return tableStats{}, err
	}
	var doc struct {
		Nftables []struct {
			Chain json.RawMessage `json:"chain"`
			Rule  json.RawMessage `json:"rule"`
			Set   *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
			Map *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"map"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return tableStats{}, fmt.Errorf("nft -j list table ip %s: %w", table, err)
	}
	var st tableStats
	for _, o := range doc.Nftables {
		switch {
		case o.Chain != nil:
			st.Chains++
		case o.Rule != nil:
			st.Rules++
		case o.Set != nil:
			st.Sets++
			st.Elements += len(o.Set.Elem)
		case o.Map != nil:
			st.Sets++
			st.Elements += len(o.Map.Elem)
		}
	}
	text, err := nft("list", "table", "ip", table)
	if err != nil {
		return tableStats{}, err
	}
	st.Bytes = len(text)
	return st, nil
}

var (
	vipRE = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+) \. tcp \. (\d+) : goto service-`)
	// kube-proxy, for a service without affinity: "dnat ip to numgen
	// random mod 10 map { 0 : 10.244.0.2 . 8080, ... }"; both, for an
	// endpoint chain (affinity): "dnat to 10.244.0.2:8080".
	dnatRE = regexp.MustCompile(`dnat (?:ip )?to ([^{@\n]*\{[^}]*\}|[^@\s]+\s)`)
	// bosun, for a service without affinity: "dnat ip to numgen random mod
	// 720720000 map @backends-<port>", whose elements are the targets:
	// "map backends-<port> { ... elements = { 0-240239999 : 10.244.0.2 . 8080, ... } }".
	backendsRE = regexp.MustCompile(`(?s)map backends-[^{]*\{.*?elements = \{([^}]*)\}`)
	targetRE   = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+)(?::| \. )(\d+)`)
)

// dataPath is what a table does with the services, as far as both
// engines' layouts share it: the ClusterIP:port keys of the map that
// sends packets to a service chain, and the DNAT targets, sorted.
func dataPath(table string) (vips, dnats []string, err error) {
	out, err := nft("list", "table", "ip", table)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range vipRE.FindAllSubmatch(out, -1) {
		vips = append(vips, string(m[1])+":"+string(m[2]))
	}
	for _, m := range slices.Concat(dnatRE.FindAllSubmatch(out, -1), backendsRE.FindAllSubmatch(out, -1)) {
		for _, t := range targetRE.FindAllSubmatch(m[1], -1) {
			dnats = append(dnats, string(t[1])+":"+string(t[2]))
		}
	}
	slices.Sort(vips)
	slices.Sort(dnats)
	return vips, dnats, nil
}
