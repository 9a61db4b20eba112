package gateway

import (
	"errors"
	"io"
	"math/bits"
	"net/http"
	"sync"
)

// bufferPool lends httputil.ReverseProxy the buffers it copies response
// bodies through. Without one, every proxied request allocates a fresh
// 32 KiB buffer: under load, most of the gateway's garbage and, with many
// connections, a good part of its memory.
type bufferPool struct{ pool sync.Pool }

// proxyBufferSize is the size ReverseProxy uses when it has no pool.
const proxyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, proxyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != proxyBufferSize {
		return
	}
	buf = buf[:proxyBufferSize]
	b.pool.Put(&buf)
}

// smallBodyMax is the largest upstream response body the proxy reads whole
// before it answers the client (bufferSmallBody).
const smallBodyMax = 16 << 10

// smallBodies holds the buffers of bufferSmallBody by size class: class i
// holds buffers of 1 KiB << i, up to smallBodyMax.
var smallBodies [5]sync.Pool // 1, 2, 4, 8 and 16 KiB

// smallClass is the size class of a body of n bytes, 0 < n ≤ smallBodyMax.
func smallClass(n int) int { return bits.Len(uint(n-1) >> 10) }

// bufferSmallBody reads a small upstream response body (a declared length
// of at most smallBodyMax) whole into a pooled buffer and gives the
// upstream connection back to the pool at once, before the answer goes
// out. The connection is then not held while the paywall journals the
// outcome (it does so when the headers are written) nor while a slow client
// reads, so a few upstream connections serve many client connections
// (limits.upstream_connections). The client gets the same headers and
// bytes. A body that breaks off before its declared length is an upstream
// failure (502, any payment released) instead of a truncated answer.
//
// Left to be streamed: bodies of unknown or larger length, HEAD answers,
// protocol switches and 1xx, and answers that declare trailers.
func bufferSmallBody(res *http.Response) error {
	n := res.ContentLength
	if n <= 0 || n > smallBodyMax || res.StatusCode < 200 || len(res.Trailer) > 0 ||
		res.Request == nil || res.Request.Method == http.MethodHead {
		return nil
	}
	class := smallClass(int(n))
	p, _ := smallBodies[class].Get().(*[]byte)
	if p == nil {
		b := make([]byte, 1<<10<<class)
		p = &b
	}
	buf := (*p)[:n]
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		smallBodies[class].Put(p)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	// The transport answers EOF with the last declared byte, and a body
	// read to EOF is what lets it reuse the connection; this empty read
	// makes sure of it.
	_, _ = res.Body.Read(buf[n:])
	res.Body.Close()
	res.Body = &smallBody{buf: buf[:n], p: p, class: class}
	return nil
}

// smallBody is a response body read whole by bufferSmallBody; Close gives
// its buffer back.
type smallBody struct {
	buf   []byte
	off   int
	p     *[]byte
	class int
}

func (b *smallBody) Read(p []byte) (int, error) {
	if b.off >= len(b.buf) {
		return 0, io.EOF
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

func (b *smallBody) Close() error {
	if b.p != nil {
		smallBodies[b.class].Put(b.p)
		b.p, b.buf, b.off = nil, nil, 0
	}
	return nil
}
