package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	File    string // "" for a Config built in code
	Line    int    // 1-based; 0 when unknown
	Path    string // the offending setting, e.g. "routes[1].price"; "" for the whole file
	Message string
}

// String formats p as "<file>:<line>: <path>: <message>", leaving out the
// parts p lacks.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	case p.File != "":
		fmt.Fprintf(&b, "%s: ", p.File)
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem found in a configuration, sorted by line.
type Error struct {
	Problems []Problem
}

// Error writes one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Errorf returns a problem with the setting at path (such as
// "networks[0].settlement_key_file") found after validation, when the
// gateway starts: a key file that cannot be read, a node that serves
// another chain. It carries the file and line of the setting when c was
// read by Parse, so every start-up mistake that comes from the file points
// into it.
func (c *Config) Errorf(path, format string, args ...any) *Error {
	p := Problem{Path: path, Message: fmt.Sprintf(format, args...)}
	if c != nil && c.src != nil {
		p.File, p.Line = c.src.file, c.src.line(path)
	}
	return &Error{Problems: []Problem{p}}
}

func newError(problems []Problem) *Error {
	slices.SortStableFunc(problems, func(a, b Problem) int { return a.Line - b.Line })
	return &Error{Problems: problems}
}

// source is the parsed YAML a Config was decoded from, for line numbers.
type source struct {
	file string
	root *yaml.Node
}

// segment is one step of a path: a mapping key or a list index.
type segment struct {
	key   string
	index int // when key == ""
}

// segments splits "routes[1].price" into routes, 1, price. Keys in this
// schema never contain dots or brackets.
func segments(path string) []segment {
	var segs []segment
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return segs
			}
			i, _ := strconv.Atoi(path[1:end])
			segs = append(segs, segment{index: i})
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			segs = append(segs, segment{key: path[:end]})
			path = path[end:]
		}
	}
	return segs
}

func unalias(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 100; depth++ {
		n = n.Alias
	}
	return n
}

// mapValue finds key in mapping m, looking into merged mappings ("<<") as
// the decoder does. It returns the key node and the value node.
func mapValue(m *yaml.Node, key string, depth int) (*yaml.Node, *yaml.Node) {
	m = unalias(m)
	if m == nil || m.Kind != yaml.MappingNode || depth > 10 {
		return nil, nil
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Value == key && k.ShortTag() != "!!merge" {
			return k, m.Content[i+1]
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, m.Content[i+1])
		}
	}
	for _, v := range merges {
		v = unalias(v)
		if v != nil && v.Kind == yaml.SequenceNode {
			for _, e := range v.Content {
				if k, val := mapValue(e, key, depth+1); k != nil {
					return k, val
				}
			}
		} else if k, val := mapValue(v, key, depth+1); k != nil {
			return k, val
		}
	}
	return nil, nil
}

// lookup follows path from the root. It returns the value found (nil if the
// path does not exist) and the line that best locates path: the key's line
// for a setting, the element's line for a list element, or, for a missing
// setting, the line of its closest existing parent.
func (s *source) lookup(path string) (*yaml.Node, int) {
	n := unalias(s.root)
	if n == nil {
		return nil, 0
	}
	line := n.Line
	for _, seg := range segments(path) {
		n = unalias(n)
		if seg.key == "" {
			if n == nil || n.Kind != yaml.SequenceNode || seg.index < 0 || seg.index >= len(n.Content) {
				return nil, line
			}
			n = n.Content[seg.index]
			line = n.Line
			continue
		}
		k, v := mapValue(n, seg.key, 0)
		if k == nil {
			return nil, line
		}
		n, line = v, k.Line
	}
	return unalias(n), line
}

// line is the line that best locates path.
func (s *source) line(path string) int {
	_, line := s.lookup(path)
	return line
}

// has reports whether path is set to something other than null.
func (s *source) has(path string) bool {
	n, _ := s.lookup(path)
	return n != nil && !(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// length is the number of elements of the list at path.
func (s *source) length(path string) int {
	n, _ := s.lookup(path)
	if n == nil || n.Kind != yaml.SequenceNode {
		return 0
	}
	return len(n.Content)
}

// sameShape reports whether c's lists have the lengths of the file's.
func (s *source) sameShape(c *Config) bool {
	if s.length("networks") != len(c.Networks) || s.length("rails") != len(c.Rails) || s.length("routes") != len(c.Routes) {
		return false
	}
	for i, r := range c.Routes {
		if r != nil && s.length(fmt.Sprintf("routes[%d].accept", i)) != len(r.Accept) {
			return false
		}
	}
	for i, n := range c.Networks {
		if n != nil && s.length(fmt.Sprintf("networks[%d].assets", i)) != len(n.Assets) {
			return false
		}
	}
	return true
}

// walk calls visit for every mapping entry and list element under n, with
// its path; key is nil for list elements. Aliases are not followed: the
// decoder reports problems in aliased content at the anchor's lines.
func walk(n *yaml.Node, path string, visit func(path string, key, val *yaml.Node) bool) bool {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if !walk(c, path, visit) {
				return false
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(k.Value)
			if !visit(p, k, v) || !walk(v, p, visit) {
				return false
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if !visit(p, nil, e) || !walk(e, p, visit) {
				return false
			}
		}
	}
	return true
}

var (
	lineRE      = regexp.MustCompile(`^line (\d+): (.*)$`)
	notFoundRE  = regexp.MustCompile(`^field (.*) not found in type (\S+)$`)
	duplicateRE = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
	typeRE      = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

// yamlErrorLine splits a yaml error such as "yaml: line 3: did not find
// expected key" into its line and message.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, m[2]
	}
	return 0, msg
}

// decodeProblem turns one of the decoder's messages ("line 7: field pryce
// not found in type config.Route") into a Problem with a path. When the
// message means a value could not be decoded, undecoded is that value's
// path: the struct holds a zero there, which Validate must not also report.
func (s *source) decodeProblem(msg string) (p Problem, undecoded *string) {
	p = Problem{File: s.file, Message: msg}
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return p, nil
	}
	line, _ := strconv.Atoi(m[1])
	p.Line, p.Message = line, m[2]

	// find returns the path of the first entry on the line that ok accepts.
	find := func(ok func(key, val *yaml.Node) bool) (string, bool) {
		var found string
		complete := walk(s.root, "", func(path string, key, val *yaml.Node) bool {
			if val.Line == line || key != nil && key.Line == line {
				if ok(key, val) {
					found = path
					return false
				}
			}
			return true
		})
		return found, !complete
	}

	if m := notFoundRE.FindStringSubmatch(p.Message); m != nil {
		name, typ := m[1], m[2]
		if path, ok := find(func(k, _ *yaml.Node) bool { return k != nil && k.Line == line && k.Value == name }); ok {
			p.Path = parentPath(path)
		}
		p.Message = unknownField(name, typ)
		return p, nil
	}
	if m := duplicateRE.FindStringSubmatch(p.Message); m != nil {
		name, _ := strconv.Unquote(m[1])
		path, ok := find(func(k, _ *yaml.Node) bool { return k != nil && k.Line == line && k.Value == name })
		p.Message = fmt.Sprintf("duplicate key %q (first set at line %s)", name, m[2])
		if !ok {
			return p, nil
		}
		// The decoder skips a mapping with duplicate keys altogether.
		p.Path = parentPath(path)
		return p, &p.Path
	}
	if m := typeRE.FindStringSubmatch(p.Message); m != nil {
		tag, short, goType := m[1], strings.TrimSuffix(m[2], "..."), m[3]
		var node *yaml.Node
		path, ok := find(func(_, v *yaml.Node) bool {
			if v.Line != line {
				return false
			}
			switch tag {
			case "seq":
				return v.Kind == yaml.SequenceNode
			case "map":
				return v.Kind == yaml.MappingNode
			}
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!"+tag && strings.HasPrefix(v.Value, short) {
				node = v
				return true
			}
			return false
		})
		if !ok && line == unalias(s.root).Line && strings.HasSuffix(goType, "config.Config") {
			// The document itself is not a mapping.
			path, ok, node = "", true, unalias(s.root)
		}
		got := map[string]string{"seq": "a list", "map": "a mapping"}[tag]
		switch {
		case got != "":
		case node != nil && tag == "str":
			got = strconv.Quote(node.Value)
		case node != nil:
			got = node.Value
		default:
			got = "`" + m[2] + "`"
		}
		p.Message = fmt.Sprintf("want %s, got %s", want(goType), got)
		if !ok {
			return p, nil
		}
		p.Path = path
		return p, &path
	}
	return p, nil
}

// parentPath drops the last key of path: "routes[0].pryce" -> "routes[0]".
func parentPath(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 && !strings.Contains(path[i:], "]") {
		return path[:i]
	}
	return ""
}

// want describes the Go type a value failed to decode into.
func want(goType string) string {
	switch {
	case goType == "time.Duration":
		return `a duration such as "30s"`
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(strings.TrimPrefix(goType, "*"), "config."):
		return "a mapping"
	}
	return goType
}

// unknownField names a field the schema lacks, with the closest known name
// when there is one (a typo) or else the known names.
func unknownField(name, goType string) string {
	var fields []string
	for _, t := range []reflect.Type{
		reflect.TypeFor[Config](), reflect.TypeFor[Network](), reflect.TypeFor[Asset](), reflect.TypeFor[Route](), reflect.TypeFor[Accept](),
	} {
		if t.String() == goType {
			fields = yamlFields(t)
		}
	}
	return suggestField(name, fields)
}

// suggestField names an unknown field with the closest of the known fields
// when there is one (a typo), or else lists them.
func suggestField(name string, fields []string) string {
	if len(fields) == 0 {
		return fmt.Sprintf("unknown field %q", name)
	}
	best, bestDist := "", 3
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	for _, f := range fields {
		d := distance(norm(name), f)
		switch n := norm(name); {
		case strings.ReplaceAll(n, "_", "") == strings.ReplaceAll(f, "_", ""):
			d = 0 // payTo, pay-to
		case strings.HasPrefix(n, f+"_") || strings.HasSuffix(n, "_"+f):
			d = 1 // rpc_url
		}
		if d < bestDist && (d <= 1 || len(f) > 4) {
			best, bestDist = f, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown field %q; did you mean %q?", name, best)
	}
	return fmt.Sprintf("unknown field %q; known fields: %s", name, strings.Join(fields, ", "))
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
