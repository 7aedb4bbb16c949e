package preview

import (
	"strconv"
	"strings"

	"github.com/sergi/go-diff/diffmatchpatch"
)

// contextLines is how many unchanged lines surround each change in a hunk, as
// in `diff -u` and `kubectl diff`.
const contextLines = 3

// splitLines splits text into lines, each keeping its "\n"; a last line
// without one is kept as it is.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// lineOp is one line of an edit script: ' ' kept, '-' removed, '+' added.
type lineOp struct {
	op   byte
	text string
}

// maxDiffLines bounds the texts lineDiff aligns: Myers' algorithm takes time
// proportional to lines times differences, and go-diff encodes each distinct
// line as one rune. No manifest object comes near it; beyond it the script is
// every old line removed, then every new line added (still a correct diff).
const maxDiffLines = 20000

// lineDiff returns a shortest edit script turning a into b, line by line.
// It runs go-diff's Myers implementation on lines encoded as runes; a zero
// DiffTimeout makes it exact and keeps the clock out of it.
func lineDiff(a, b string) []lineOp {
	var ops, dels, adds []lineOp
	flush := func() { // a change reads as its removals, then its additions
		ops = append(append(ops, dels...), adds...)
		dels, adds = dels[:0], adds[:0]
	}
	if strings.Count(a, "\n")+strings.Count(b, "\n") > maxDiffLines {
		for _, l := range splitLines(a) {
			dels = append(dels, lineOp{'-', l})
		}
		for _, l := range splitLines(b) {
			adds = append(adds, lineOp{'+', l})
		}
		flush()
		return ops
	}
	dmp := diffmatchpatch.New()
	dmp.DiffTimeout = 0
	ra, rb, lines := dmp.DiffLinesToRunes(a, b)
	diffs := dmp.DiffCharsToLines(dmp.DiffMainRunes(ra, rb, false), lines)
	for _, d := range diffs {
		for _, line := range splitLines(d.Text) {
			switch d.Type {
			case diffmatchpatch.DiffEqual:
				flush()
				ops = append(ops, lineOp{' ', line})
			case diffmatchpatch.DiffDelete:
				dels = append(dels, lineOp{'-', line})
			case diffmatchpatch.DiffInsert:
				adds = append(adds, lineOp{'+', line})
			}
		}
	}
	flush()
	return ops
}

// unifiedDiff renders the difference between two texts in the unified format
// of `diff -u`: a ---/+++ header, then hunks of changes with three lines of
// context, hunks closer than six lines merged. Equal texts give "".
func unifiedDiff(fromName, toName, a, b string) string {
	ops := lineDiff(a, b)
	var out strings.Builder
	i := 0
	for {
		// Find the next change; a hunk starts contextLines before it.
		for i < len(ops) && ops[i].op == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(0, i-contextLines)
		// Extend the hunk while the next change is within 2*contextLines
		// unchanged lines of the last one.
		end := i
		for end < len(ops) {
			if ops[end].op != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].op == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*contextLines {
				end = min(end+contextLines, len(ops))
				break
			}
			end = run
		}
		if out.Len() == 0 {
			out.WriteString("--- " + fromName + "\n+++ " + toName + "\n")
		}
		writeHunk(&out, ops, start, end)
		i = end
	}
	return out.String()
}

func writeHunk(out *strings.Builder, ops []lineOp, start, end int) {
	// Line numbers of the hunk's first line in each text (1-based).
	fromLine, toLine := 1, 1
	for _, o := range ops[:start] {
		if o.op != '+' {
			fromLine++
		}
		if o.op != '-' {
			toLine++
		}
	}
	var fromCount, toCount int
	for _, o := range ops[start:end] {
		if o.op != '+' {
			fromCount++
		}
		if o.op != '-' {
			toCount++
		}
	}
	out.WriteString("@@ -" + hunkRange(fromLine, fromCount) + " +" + hunkRange(toLine, toCount) + " @@\n")
	for _, o := range ops[start:end] {
		out.WriteByte(o.op)
		out.WriteString(o.text)
		if !strings.HasSuffix(o.text, "\n") {
			out.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange formats one side of a hunk header as GNU diff does: "start,count",
// just "start" when count is 1, and for an empty range the line before it.
func hunkRange(start, count int) string {
	switch count {
	case 0:
		return strconv.Itoa(start-1) + ",0"
	case 1:
		return strconv.Itoa(start)
	}
	return strconv.Itoa(start) + "," + strconv.Itoa(count)
}
