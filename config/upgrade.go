package config

import (
	"bytes"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// legacyRouteKeys are a route's settings in the form before rail blocks.
var legacyRouteKeys = []string{"price", "asset", "network", "pay_to", "max_timeout"}

// Upgrade rewrites a configuration file in the accept form: each route that
// sets price, network, asset, pay_to or max_timeout gets an accept list
// naming its implicit rail, and that rail is written as a rail block with
// its name (LegacyX402Name) and everything the name is made of spelled
// out, so that payments journaled under it still find it. Everything else
// is left as written, comments included where the YAML tree keeps them (a
// comment on a removed setting moves to the accept list).
//
// The file must load (Parse); Upgrade returns Parse's error otherwise. A
// file already in the accept form comes back re-indented but unchanged.
func Upgrade(filename string, data []byte) ([]byte, error) {
	c, err := Parse(filename, data)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	root := doc.Content[0]
	_, routes := mapValue(root, "routes", 0)
	if routes == nil || routes.Kind != yaml.SequenceNode {
		return nil, c.Errorf("routes", "cannot upgrade: routes is not a plain list")
	}
	implicit := c.Rails[min(c.src.length("rails"), len(c.Rails)):]
	var added []*Rail
	for j, rn := range routes.Content {
		rt := c.Routes[j]
		if rt.Free || c.src.has(fmt.Sprintf("routes[%d].accept", j)) {
			continue
		}
		if rn.Kind != yaml.MappingNode || hasMerge(rn) {
			return nil, c.Errorf(fmt.Sprintf("routes[%d]", j), "cannot upgrade: the route uses YAML aliases or merge keys; write its accept list by hand")
		}
		a := rt.Resolved.Accept[0]
		if slices.Contains(implicit, a.Rail) && !slices.Contains(added, a.Rail) {
			added = append(added, a.Rail)
		}
		legacyToAccept(rn, a.Rail.Name)
	}
	if len(added) > 0 {
		if err := addRailBlocks(root, added); err != nil {
			return nil, c.Errorf("rails", "cannot upgrade: %v", err)
		}
	}
	return encode(&doc)
}

// hasMerge reports whether mapping m has a merge key ("<<").
func hasMerge(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].ShortTag() == "!!merge" {
			return true
		}
	}
	return false
}

// legacyToAccept replaces the older form's keys of route mapping rn with an
// accept list of one entry, rail at the price the route wrote, in the
// place of the first key removed.
func legacyToAccept(rn *yaml.Node, rail string) {
	var price *yaml.Node
	var kept []*yaml.Node
	at := -1
	var comments []string
	for i := 0; i+1 < len(rn.Content); i += 2 {
		k, v := rn.Content[i], rn.Content[i+1]
		if !slices.Contains(legacyRouteKeys, k.Value) {
			kept = append(kept, k, v)
			continue
		}
		if at < 0 {
			at = len(kept)
		}
		for _, c := range []string{k.HeadComment, k.LineComment, v.LineComment, k.FootComment} {
			if c != "" {
				comments = append(comments, c)
			}
		}
		if k.Value == "price" {
			price = v
			price.LineComment = ""
		}
	}
	entry := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		scalar("rail"), scalar(rail), scalar("price"), price,
	}}
	key := scalar("accept")
	if len(comments) > 0 {
		key.HeadComment = joinComments(comments)
	}
	accept := []*yaml.Node{key, {Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{entry}}}
	rn.Content = slices.Insert(kept, at, accept...)
}

// joinComments joins yaml comments, one per line.
func joinComments(cs []string) string {
	var b bytes.Buffer
	for i, c := range cs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(c)
	}
	return b.String()
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// addRailBlocks writes rails as blocks at the end of the root's rails
// list, which it creates before routes when the file has none.
func addRailBlocks(root *yaml.Node, rails []*Rail) error {
	var blocks []*yaml.Node
	for _, r := range rails {
		r.Settings.Normalize()
		var n yaml.Node
		if err := n.Encode(r); err != nil {
			return err
		}
		tidy(&n)
		blocks = append(blocks, &n)
	}
	blocks[0].HeadComment = "# The rails routes of the older form stood for. Their names are journaled\n# with every payment: renaming one strands its unfinished payments."
	if _, list := mapValue(root, "rails", 0); list != nil {
		if list.Kind != yaml.SequenceNode {
			return fmt.Errorf("rails is not a list")
		}
		list.Content = append(list.Content, blocks...)
		return nil
	}
	at := len(root.Content)
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "routes" {
			at = i
		}
	}
	root.Content = slices.Insert(root.Content, at, scalar("rails"), &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: blocks})
	return nil
}
