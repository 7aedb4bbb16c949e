package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// document is one YAML document of a file.
type document struct {
	file string
	// start is the file line of text's first line; text keeps the document
	// separator line (blanked) so that line numbers inside text map to file
	// lines by adding start-1.
	start int
	// first is the file line of the first line that is neither blank nor a
	// comment: the line an object's Source points at.
	first int
	text  []byte

	parsed bool
	root   *yamlv3.Node // nil when yaml.v3 cannot parse the text

	// lines, for a document decrypted from a SOPS file, maps lines of
	// text (the plaintext) to the lines of the same fields in the file.
	lines lineMap
}

var bom = []byte("\xEF\xBB\xBF")

// splitDocuments cuts a YAML stream at its document markers ("---" and
// "..." at the start of a line), keeping each document's position. It splits
// the text itself because sigs.k8s.io/yaml silently reads only the first
// document of a stream. Documents with no content are dropped.
func splitDocuments(file string, data []byte) []*document {
	data = bytes.TrimPrefix(data, bom)
	var docs []*document
	cur := &document{file: file, start: 1}
	flush := func() {
		if cur.first > 0 {
			docs = append(docs, cur)
		}
	}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if isDocumentMarker(line) {
			flush()
			cur = &document{file: file, start: lineNo}
			// Keep the line so numbering stays aligned; blank the marker so
			// whatever follows it ("--- # comment") stays in place.
			blanked := append([]byte("   "), line[3:]...)
			cur.text = append(cur.text, blanked...)
			if hasContent(blanked) {
				cur.first = lineNo
			}
			continue
		}
		cur.text = append(cur.text, line...)
		if cur.first == 0 && hasContent(line) {
			cur.first = lineNo
		}
	}
	flush()
	return docs
}

func isDocumentMarker(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) && !bytes.HasPrefix(line, []byte("...")) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\n' || line[3] == '\r'
}

func hasContent(line []byte) bool {
	t := bytes.TrimSpace(line)
	return len(t) > 0 && t[0] != '#'
}

// fileLine maps a 1-based line of d.text to a line of the file.
func (d *document) fileLine(textLine int) int {
	if textLine < 1 {
		return d.first
	}
	if d.lines != nil {
		if n, ok := d.lines.fileLine(textLine); ok {
			return n
		}
		return d.first
	}
	return d.start + textLine - 1
}

// errorAt builds an error for the field at path, placed on the line that
// field is written on, or on the nearest enclosing field that exists, or on
// the document's first line.
func (d *document) errorAt(path, msg string) Error {
	return Error{File: d.file, Line: d.lineOf(parsePath(path)), Field: path, Message: msg}
}

func (d *document) node() *yamlv3.Node {
	if !d.parsed {
		d.parsed = true
		var n yamlv3.Node
		if err := yamlv3.Unmarshal(d.text, &n); err == nil && n.Kind == yamlv3.DocumentNode && len(n.Content) == 1 {
			d.root = n.Content[0]
		}
	}
	return d.root
}

func (d *document) lineOf(path []segment) int {
	n := deref(d.node())
	if n == nil {
		return d.first
	}
	best := n.Line
	for _, s := range path {
		next, keyLine := child(n, s)
		if next == nil {
			break
		}
		best, n = keyLine, next
	}
	return d.fileLine(best)
}

// child steps from n along s, returning the child node and the line that
// names it (the key's line in a mapping, the item's line in a sequence).
func child(n *yamlv3.Node, s segment) (*yamlv3.Node, int) {
	n = deref(n)
	switch {
	case n == nil:
		return nil, 0
	case n.Kind == yamlv3.MappingNode && !s.isIndex:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value == s.key {
				return deref(n.Content[i+1]), k.Line
			}
		}
	case n.Kind == yamlv3.SequenceNode && s.isIndex:
		if s.index < len(n.Content) {
			item := deref(n.Content[s.index])
			if item == nil {
				return nil, 0
			}
			return item, item.Line
		}
	}
	return nil, 0
}

// deref follows aliases, bounded so a cycle cannot hang us.
func deref(n *yamlv3.Node) *yamlv3.Node {
	for i := 0; n != nil && n.Kind == yamlv3.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yamlv3.AliasNode {
		return nil
	}
	return n
}

// segment is one step of a field path: a key ("spec", or the "cpu" of
// "requests[cpu]") or a list index.
type segment struct {
	key     string
	index   int
	isIndex bool
}

// parsePath reads paths as apimachinery's field.Path renders them:
// "spec.template.spec.containers[1].name", "metadata.labels[app]".
func parsePath(p string) []segment {
	var segs []segment
	for len(p) > 0 {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return append(segs, segment{key: p[1:]})
			}
			inner := p[1:end]
			if n, err := strconv.Atoi(inner); err == nil && n >= 0 {
				segs = append(segs, segment{index: n, isIndex: true})
			} else {
				segs = append(segs, segment{key: inner})
			}
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			segs = append(segs, segment{key: p[:end]})
			p = p[end:]
		}
	}
	return segs
}

// The YAML libraries report positions only inside their messages
// ("yaml: line 3: mapping values are not allowed in this context"), so the
// line is read from the text; the message is kept as it is.
var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

func (d *document) yamlErrors(err error) []Error {
	text := err.Error()
	text = strings.TrimPrefix(text, "error converting YAML to JSON: ")
	var out []Error
	for _, line := range strings.Split(text, "\n") {
		m := yamlLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, convErr := strconv.Atoi(m[1])
		if convErr != nil {
			n = 0
		}
		out = append(out, Error{File: d.file, Line: d.fileLine(n), Message: "invalid YAML: " + m[2]})
	}
	if len(out) == 0 {
		out = append(out, Error{File: d.file, Line: d.first, Message: "invalid YAML: " + strings.TrimPrefix(text, "yaml: ")})
	}
	return out
}

// decodeError explains why js did not decode into obj. The decoder Kubernetes
// uses (sigs.k8s.io/json) does not export its error types, so a type mismatch
// is described by decoding again with encoding/json, whose
// *json.UnmarshalTypeError names the field (without list indices) and the
// JSON kind found; the offending node is then looked up in the YAML.
func (d *document) decodeError(js []byte, obj any, err error) Error {
	fresh := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
	if stdErr := json.Unmarshal(js, fresh); stdErr != nil {
		err = stdErr
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		kind, _, _ := strings.Cut(te.Value, " ")
		path, line := d.findTyped(strings.Split(te.Field, "."), kind)
		if path == "" {
			path = te.Field
		}
		// Only the JSON kind: the value may be a Secret's.
		return Error{File: d.file, Line: line, Field: path,
			Message: "expected " + describeType(te.Type) + ", got " + kind}
	}
	if errors.Is(err, resource.ErrFormatWrong) || errors.Is(err, resource.ErrNumeric) || errors.Is(err, resource.ErrSuffix) {
		if path, line, value, ok := d.findBadQuantity(); ok {
			return Error{File: d.file, Line: line, Field: path,
				Message: "invalid quantity " + value + ": must be a number with an optional suffix (e.g. 500m, 64Mi, 1Gi)"}
		}
		return Error{File: d.file, Line: d.first, Message: "invalid resource quantity"}
	}
	return Error{File: d.file, Line: d.first, Message: "cannot decode: " + err.Error()}
}

func describeType(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "mapping"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

// findTyped finds the node at keys (list indices are wildcards) whose JSON
// kind is want, returning its full path and file line. Without such a node
// it falls back to the first node at keys, then to the document start.
func (d *document) findTyped(keys []string, want string) (string, int) {
	var firstPath, matchPath string
	var firstLine, matchLine int
	var walk func(n *yamlv3.Node, keys []string, path string, line, depth int) bool
	walk = func(n *yamlv3.Node, keys []string, path string, line, depth int) bool {
		n = deref(n)
		if n == nil || depth > 64 {
			return false
		}
		if len(keys) == 0 {
			if firstPath == "" {
				firstPath, firstLine = path, line
			}
			if jsonKind(n) == want {
				matchPath, matchLine = path, line
				return true
			}
			return false
		}
		switch n.Kind {
		case yamlv3.MappingNode:
			next, keyLine := child(n, segment{key: keys[0]})
			if next != nil {
				p := keys[0]
				if path != "" {
					p = path + "." + keys[0]
				}
				return walk(next, keys[1:], p, keyLine, depth+1)
			}
		case yamlv3.SequenceNode:
			for i, item := range n.Content {
				if walk(item, keys, path+"["+strconv.Itoa(i)+"]", item.Line, depth+1) {
					return true
				}
			}
		}
		return false
	}
	walk(d.node(), keys, "", 0, 0)
	switch {
	case matchPath != "":
		return matchPath, d.fileLine(matchLine)
	case firstPath != "":
		return firstPath, d.fileLine(firstLine)
	}
	return "", d.first
}

func jsonKind(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.MappingNode:
		return "object"
	case yamlv3.SequenceNode:
		return "array"
	case yamlv3.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "bool"
		case "!!null":
			return "null"
		}
		return "string"
	}
	return ""
}

// findBadQuantity finds the first value under a "limits" or "requests" key
// that is not a resource quantity.
func (d *document) findBadQuantity() (path string, line int, value string, ok bool) {
	var walk func(n *yamlv3.Node, path string, inResources bool, depth int) bool
	walk = func(n *yamlv3.Node, p string, inResources bool, depth int) bool {
		n = deref(n)
		if n == nil || depth > 64 {
			return false
		}
		switch n.Kind {
		case yamlv3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], deref(n.Content[i+1])
				var cp string
				if inResources {
					cp = p + "[" + k.Value + "]"
					if v == nil || v.Kind != yamlv3.ScalarNode {
						path, line, value, ok = cp, k.Line, "(not a scalar)", true
						return true
					}
					if _, err := resource.ParseQuantity(v.Value); err != nil {
						path, line, value, ok = cp, k.Line, strconv.Quote(v.Value), true
						return true
					}
					continue
				}
				cp = k.Value
				if p != "" {
					cp = p + "." + k.Value
				}
				if walk(v, cp, k.Value == "limits" || k.Value == "requests", depth+1) {
					return true
				}
			}
		case yamlv3.SequenceNode:
			for i, item := range n.Content {
				if walk(item, p+"["+strconv.Itoa(i)+"]", false, depth+1) {
					return true
				}
			}
		}
		return false
	}
	walk(d.node(), "", false, 0)
	if ok {
		line = d.fileLine(line)
	}
	return path, line, value, ok
}
