package fhirproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout is how long the upstream may take to begin a response, or
// leave a response body without a byte, when Proxy.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// errUpstreamTimeout is what a read on a connection the watch closed
// returns.
var errUpstreamTimeout error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string { return "fhirproxy: the FHIR server did not answer in time" }
func (timeoutError) Timeout() bool { return true }

// Temporary is part of net.Error (deprecated there).
func (timeoutError) Temporary() bool { return false }

// watchTick is how often a watch looks at its connections: a timeout fires
// up to one tick late.
const watchTick = 250 * time.Millisecond

// connWatch bounds the default Transport's waits without a runtime timer
// per request (http.Transport.ResponseHeaderTimeout's timer, channel and
// select cost several µs of a proxied read in profiles, as did a context
// per request): each upstream connection notes, on a coarse clock, when it
// last wrote or read, and one goroutine, running while there are
// connections, closes any that has waited longer than the timeout. An idle
// pooled connection is closed the same way, which costs a reconnect.
type connWatch struct {
	timeout int64 // nanoseconds
	mu      sync.Mutex
	conns   map[*watchedConn]struct{}
	running bool
	now     atomic.Int64 // the coarse clock, Unix nanoseconds
}

type watchedConn struct {
	net.Conn
	w       *connWatch
	last    atomic.Int64 // coarse time of the last write, or read that got bytes
	expired atomic.Bool
}

func (w *connWatch) watch(c net.Conn) net.Conn {
	wc := &watchedConn{Conn: c, w: w}
	w.mu.Lock()
	if w.conns == nil {
		w.conns = map[*watchedConn]struct{}{}
	}
	if !w.running {
		w.running = true
		w.now.Store(time.Now().UnixNano())
		go w.run()
	}
	wc.last.Store(w.now.Load())
	w.conns[wc] = struct{}{}
	w.mu.Unlock()
	return wc
}

func (w *connWatch) run() {
	t := time.NewTicker(watchTick)
	defer t.Stop()
	for range t.C {
		now := time.Now().UnixNano()
		w.now.Store(now)
		w.mu.Lock()
		if len(w.conns) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		for c := range w.conns {
			if now-c.last.Load() > w.timeout {
				c.expired.Store(true)
				_ = c.Conn.Close()
				delete(w.conns, c)
			}
		}
		w.mu.Unlock()
	}
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.last.Store(c.w.now.Load())
	}
	if err != nil && c.expired.Load() {
		err = errUpstreamTimeout
	}
	return n, err
}

func (c *watchedConn) Write(b []byte) (int, error) {
	c.last.Store(c.w.now.Load())
	n, err := c.Conn.Write(b)
	if err != nil && c.expired.Load() {
		err = errUpstreamTimeout
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.w.mu.Lock()
	delete(c.w.conns, c)
	c.w.mu.Unlock()
	return c.Conn.Close()
}

func (p *Proxy) timeout() time.Duration { return or(p.Timeout, DefaultTimeout) }

var _ net.Error = timeoutError{}
