package config

import (
	"bytes"
	"time"

	"go.yaml.in/yaml/v3"
)

// Canonical writes the configuration as YAML with every default and each
// route's network, asset, pay_to and upstream spelled out, prices as
// "<amount> <symbol>", addresses checksummed and keys in a fixed order. Two
// files that configure the same gateway have the same canonical form, and
// Parse(c.Canonical()) equals c.
//
// Canonical validates c first and returns Validate's error, if any.
func (c *Config) Canonical() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := c.clone()
	if err := d.Validate(); err != nil {
		return nil, err
	}
	d.normalize()

	var doc yaml.Node
	if err := doc.Encode(d); err != nil {
		return nil, err
	}
	tidy(&doc)
	return encode(&doc)
}

// tidy writes durations without zero units and quotes addresses.
func tidy(doc *yaml.Node) {
	walk(doc, "", func(_ string, key, val *yaml.Node) bool {
		if key == nil || val.Kind != yaml.ScalarNode {
			return true
		}
		switch key.Value {
		case "receipt_timeout", "max_timeout", "read_header_timeout", "body_timeout", "idle_timeout", "upstream_timeout",
			"invoice_expiry", "token_ttl":
			if t, err := time.ParseDuration(val.Value); err == nil {
				val.Value = formatDuration(t)
			}
		case "pay_to", "address", "batch_settler":
			// Unquoted, "0x..." reads as a number to YAML 1.1 tools.
			val.Style = yaml.DoubleQuotedStyle
		}
		return true
	})
}

// encode writes a YAML tree with two-space indentation.
func encode(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
