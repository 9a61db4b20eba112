package gateway

import "sync"

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
