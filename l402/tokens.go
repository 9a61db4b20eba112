package l402

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Tokens keeps paid L402 credentials, per origin, in files only their
// owner may read (0600) in Dir: a token is the proof of a payment, and
// anyone holding it may spend what it paid for. Each is kept under the
// method and path it paid for.
type Tokens struct {
	// Dir holds one JSON file per origin; "" keeps tokens in memory only.
	Dir string

	mu    sync.Mutex
	cache map[string]map[string]string // origin → "METHOD /path" → Authorization
}

func origin(req *http.Request) string { return req.URL.Scheme + "://" + req.URL.Host }

func target(req *http.Request) string { return req.Method + " " + req.URL.EscapedPath() }

func (t *Tokens) file(o string) string {
	sum := sha256.Sum256([]byte(o))
	name := strings.NewReplacer("://", "_", ":", "_", "/", "_").Replace(o)
	return filepath.Join(t.Dir, name+"-"+hex.EncodeToString(sum[:4])+".json")
}

// load returns origin o's tokens, reading its file the first time.
func (t *Tokens) load(o string) map[string]string {
	if t.cache == nil {
		t.cache = map[string]map[string]string{}
	}
	m, ok := t.cache[o]
	if ok {
		return m
	}
	m = map[string]string{}
	if t.Dir != "" {
		if b, err := os.ReadFile(t.file(o)); err == nil {
			json.Unmarshal(b, &m)
		}
	}
	t.cache[o] = m
	return m
}

func (t *Tokens) save(o string, m map[string]string) {
	if t.Dir == "" {
		return
	}
	if err := os.MkdirAll(t.Dir, 0o700); err != nil {
		return
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	tmp := t.file(o) + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil && os.Chmod(tmp, 0o600) == nil {
		os.Rename(tmp, t.file(o))
	}
}

func (t *Tokens) get(req *http.Request) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.load(origin(req))[target(req)]
}

func (t *Tokens) put(req *http.Request, auth string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := origin(req)
	m := t.load(o)
	m[target(req)] = auth
	t.save(o, m)
}

// drop forgets req's token if it is still auth (a newer one stays).
func (t *Tokens) drop(req *http.Request, auth string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := origin(req)
	m := t.load(o)
	if m[target(req)] == auth {
		delete(m, target(req))
		t.save(o, m)
	}
}
