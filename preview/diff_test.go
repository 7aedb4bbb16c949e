package preview

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	lines := func(ns ...int) string {
		var b strings.Builder
		for _, n := range ns {
			b.WriteString("l" + strconv.Itoa(n) + "\n")
		}
		return b.String()
	}
	seq := func(from, to int) []int {
		var out []int
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	tests := []struct {
		name, a, b, want string
	}{
		{"equal texts give nothing", lines(1, 2, 3), lines(1, 2, 3), ""},
		{"from empty", "", lines(1, 2), "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+l1\n+l2\n"},
		{"to empty", lines(1), "", "--- a\n+++ b\n@@ -1 +0,0 @@\n-l1\n"},
		{"change at the start has no leading context",
			lines(1, 2, 3, 4, 5, 6), lines(0, 2, 3, 4, 5, 6),
			"--- a\n+++ b\n@@ -1,4 +1,4 @@\n-l1\n+l0\n l2\n l3\n l4\n"},
		{"changes six lines apart share a hunk",
			lines(seq(1, 14)...), lines(append(append([]int{1, 2, 3, 40}, seq(5, 10)...), 110, 12, 13, 14)...),
			"--- a\n+++ b\n@@ -1,14 +1,14 @@\n l1\n l2\n l3\n-l4\n+l40\n l5\n l6\n l7\n l8\n l9\n l10\n-l11\n+l110\n l12\n l13\n l14\n"},
		{"changes seven lines apart get two hunks",
			lines(seq(1, 15)...), lines(append(append([]int{1, 2, 3, 40}, seq(5, 11)...), 120, 13, 14, 15)...),
			"--- a\n+++ b\n@@ -1,7 +1,7 @@\n l1\n l2\n l3\n-l4\n+l40\n l5\n l6\n l7\n@@ -9,7 +9,7 @@\n l9\n l10\n l11\n-l12\n+l120\n l13\n l14\n l15\n"},
		{"a missing final newline is marked", "x\ny\n", "x\nz",
			"--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n\\ No newline at end of file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unifiedDiff("a", "b", tt.a, tt.b); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestUnifiedDiff_appliesAndIsMinimal pins, on random texts, that the diff
// turns a into b when applied and changes no more lines than it must.
func TestUnifiedDiff_appliesAndIsMinimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := func() []string {
		out := make([]string, rng.IntN(30))
		for i := range out {
			out[i] = strconv.Itoa(rng.IntN(6)) + "\n"
		}
		return out
	}
	for i := range 500 {
		a, b := text(), text()
		d := unifiedDiff("a", "b", strings.Join(a, ""), strings.Join(b, ""))
		got, changed, err := applyUnified(a, d)
		if err != nil || strings.Join(got, "") != strings.Join(b, "") {
			t.Fatalf("case %d: applying the diff gave %q (%v), want %q\n%s", i, got, err, b, d)
		}
		if want := len(a) + len(b) - 2*lcs(a, b); changed != want {
			t.Fatalf("case %d: %d lines changed, a shortest script changes %d\n%s", i, changed, want, d)
		}
	}
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$`)

// applyUnified applies a unified diff to a, checking every context and
// removed line and every hunk count; it returns the result and how many
// lines were added or removed.
func applyUnified(a []string, diff string) ([]string, int, error) {
	if diff == "" {
		return a, 0, nil
	}
	lines := strings.SplitAfter(diff, "\n")
	lines = lines[2 : len(lines)-1] // header; "" after the last "\n"
	var out []string
	pos, changed := 0, 0
	for i := 0; i < len(lines); {
		m := hunkHeader.FindStringSubmatch(strings.TrimSuffix(lines[i], "\n"))
		if m == nil {
			return nil, 0, fmt.Errorf("line %q is not a hunk header", lines[i])
		}
		i++
		start, _ := strconv.Atoi(m[1])
		count := 1
		if m[2] != "" {
			count, _ = strconv.Atoi(m[2])
		}
		if count > 0 {
			start-- // 1-based; an empty range names the line before it
		}
		out = append(out, a[pos:start]...)
		pos = start
		var from, to int
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "@@"); i++ {
			l := lines[i][1:]
			switch lines[i][0] {
			case ' ', '-':
				if pos >= len(a) || a[pos] != l {
					return nil, 0, fmt.Errorf("line %d is %q, diff says %q", pos+1, a[pos], l)
				}
				pos++
				from++
				if lines[i][0] == ' ' {
					out = append(out, l)
					to++
				} else {
					changed++
				}
			case '+':
				out = append(out, l)
				to++
				changed++
			}
		}
		wantTo := 1
		if m[4] != "" {
			wantTo, _ = strconv.Atoi(m[4])
		}
		if from != count || to != wantTo {
			return nil, 0, fmt.Errorf("hunk %s counts %d,%d lines", m[0], from, to)
		}
	}
	return append(out, a[pos:]...), changed, nil
}

func lcs(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

func TestFormatQuantities(t *testing.T) {
	cpu := map[int64]string{2500: "2.5", 250: "0.25", 1000: "1", 1: "0.001", 50: "0.05", 12345: "12.345"}
	for milli, want := range cpu {
		if got := formatCPU(milli); got != want {
			t.Errorf("formatCPU(%d) = %q, want %q", milli, got, want)
		}
	}
	mem := map[int64]string{
		3 << 29: "1.5Gi", 1 << 30: "1Gi", 300 << 20: "300Mi", 1<<30 - 1: "1024Mi",
		(1 << 30) + 1: "1.01Gi", 512 << 10: "512Ki", 1: "1Ki", 1792 << 20: "1.75Gi",
	}
	for b, want := range mem {
		if got := formatMemory(b); got != want {
			t.Errorf("formatMemory(%d) = %q, want %q", b, got, want)
		}
	}
}
