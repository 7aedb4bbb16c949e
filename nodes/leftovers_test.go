package nodes

import (
	"slices"
	"testing"
)

func TestLeftoverRuns(t *testing.T) {
	found := map[string]map[string][]adoptedContainer{
		"default/web": {"w2": {{}}, "w1": {{}}}, // the current run and an orphan: adopted
		"default/db":  {"d1": {{}}},
	}
	for _, tc := range []struct {
		name string
		dirs []string
		want []string
	}{
		{"none", nil, nil},
		{"every directory has containers", []string{"w1", "w2", "d1"}, nil},
		{"containers without a directory", []string{"w2"}, nil},
		{"runs without containers, sorted", []string{"x2", "w1", "x1"}, []string{"x1", "x2"}},
		{"a pod bound here without containers is its worker's", []string{"x2", "b1", "x1"}, []string{"x1", "x2"}},
	} {
		if got := leftoverRuns(tc.dirs, found, map[string]bool{"b1": true}); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := leftoverRuns([]string{"a"}, nil, nil); !slices.Equal(got, []string{"a"}) {
		t.Errorf("nothing found: %v", got)
	}
}
