package config

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// checkShadows reports free routes that make a priced route free for a
// client that picks the Host header, which any client can:
//
//   - a free pattern with a host that takes precedence over a priced one
//     without a host for some request. ServeMux prefers a pattern with a host
//     over one without even where the priced pattern's path is more specific
//     (a free "example.com/static/" wins over a priced "/static/premium/"
//     for Host: example.com), so the precedence is not what the paths say;
//   - a priced pattern with a host whose requests, under any other Host, a
//     free pattern without a host serves from the same upstream. The gateway
//     sends the upstream its own host, not the client's, so the Host only
//     decides the price.
//
// A free pattern without a host that is more specific than a priced one (a
// free "GET /health" next to a priced "/") is the usual way to carve out an
// exception, and is not reported. Only routes registered without conflict
// (inMux) are compared.
func (v *checker) checkShadows(routes []*Route, inMux []int, resolved []Resolved) {
	for _, i := range inMux {
		for _, j := range inMux {
			free, priced := routes[i], routes[j]
			if !free.Free || priced.Free {
				continue
			}
			f, p := parsePattern(free.Match), parsePattern(priced.Match)
			switch {
			case f.host != "" && p.host == "":
				if r := overlap(f, p, f.host); r != nil && winner(r, free.Match, priced.Match) == free.Match {
					v.addf(fmt.Sprintf("routes[%d].match", i), "%q is free for any client that sends Host: %s, and ServeMux prefers it to routes[%d] (%q), which prices requests like %q; the Host header is the client's choice: price this route too, or remove its host",
						free.Match, f.host, j, priced.Match, r.Method+" "+r.URL.Path)
				}
			case f.host == "" && p.host != "" && sameUpstream(resolved[i], resolved[j]):
				r := overlap(f, p, p.host)
				if r == nil || !matches(priced.Match, r) {
					continue
				}
				other := *r
				other.Host = "other.invalid"
				if matches(free.Match, &other) {
					v.addf(fmt.Sprintf("routes[%d].match", j), "%q prices its requests only for Host: %s; with any other Host, routes[%d] (%q) serves them free from the same upstream; the Host header is the client's choice: remove the host, or price routes[%d] too",
						priced.Match, p.host, i, free.Match, i)
				}
			}
		}
	}
}

func sameUpstream(a, b Resolved) bool {
	return a.Upstream != nil && b.Upstream != nil && a.Upstream.String() == b.Upstream.String()
}

// muxPattern is a ServeMux pattern taken apart: "[METHOD ][HOST]/[PATH]".
type muxPattern struct {
	method, host string
	segs         []string // path segments; a last "" is a trailing-slash subtree
}

func parsePattern(s string) muxPattern {
	var p muxPattern
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		p.method, s = s[:i], strings.TrimLeft(s[i:], " \t")
	}
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return p
	}
	p.host, s = s[:i], s[i+1:]
	p.segs = strings.Split(s, "/")
	return p
}

func isWildcard(seg string) bool { return strings.HasPrefix(seg, "{") && seg != "{$}" }

// isRest reports whether seg, the last segment, matches any remainder.
func isRest(seg string) bool { return seg == "" || strings.HasSuffix(seg, "...}") }

// instance is a concrete segment matching seg.
func instance(seg string) string {
	switch {
	case seg == "{$}" || seg == "":
		return ""
	case isWildcard(seg):
		return "x"
	}
	return seg
}

// overlap returns a request that both patterns' paths and methods match,
// with Host host, or nil when there seems to be none. The caller confirms it
// with ServeMux itself, so a wrong guess is never reported.
func overlap(a, b muxPattern, host string) *http.Request {
	method := a.method
	switch {
	case a.method == "" && b.method == "":
		method = http.MethodGet
	case a.method == "":
		method = b.method
	case b.method == "" || a.method == b.method:
	case a.method == http.MethodGet && b.method == http.MethodHead || a.method == http.MethodHead && b.method == http.MethodGet:
		method = http.MethodHead
	default:
		return nil
	}
	var segs []string
	rest := func(ss []string) {
		for _, s := range ss {
			segs = append(segs, instance(s))
		}
	}
	for i := 0; ; i++ {
		aEnd, bEnd := i >= len(a.segs), i >= len(b.segs)
		switch {
		case aEnd && bEnd:
		case !aEnd && i == len(a.segs)-1 && isRest(a.segs[i]) && !bEnd:
			rest(b.segs[i:])
		case !bEnd && i == len(b.segs)-1 && isRest(b.segs[i]) && !aEnd:
			rest(a.segs[i:])
		case aEnd || bEnd:
			return nil
		case isWildcard(a.segs[i]):
			segs = append(segs, instance(b.segs[i]))
			continue
		case isWildcard(b.segs[i]) || a.segs[i] == b.segs[i]:
			segs = append(segs, instance(a.segs[i]))
			continue
		default:
			return nil
		}
		break
	}
	path := "/" + strings.Join(segs, "/")
	return &http.Request{Method: method, Host: host, URL: &url.URL{Path: path}, Header: http.Header{}}
}

// matches reports whether pattern, alone in a ServeMux, matches r.
func matches(pattern string, r *http.Request) bool {
	mux := http.NewServeMux()
	if handle(mux, pattern) != nil {
		return false
	}
	_, got := mux.Handler(r)
	return got == pattern
}

// winner returns which of two patterns ServeMux picks for r: a or b, or ""
// when r is not a request both match.
func winner(r *http.Request, a, b string) string {
	if !matches(a, r) || !matches(b, r) {
		return ""
	}
	mux := http.NewServeMux()
	if handle(mux, a) != nil || handle(mux, b) != nil {
		return ""
	}
	_, got := mux.Handler(r)
	return got
}
