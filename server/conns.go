package server

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connTracker is a listener that remembers the connections it accepts, so
// that a shutdown that runs out of time can say how many requests it cuts.
//
// It costs a map insert per connection and nothing per request: it does
// not wrap the connections (net/http type-asserts them for its fast
// paths, and every read and write would pay for the wrapper) nor hook
// their state changes (called twice per request); it tells a closed
// connection from an open one by asking for its descriptor. It is safe
// for concurrent use.
type connTracker struct {
	net.Listener

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // guarded by mu; closed ones until a sweep
	sweepAt int                   // guarded by mu: len(conns) that starts a sweep
}

// minSweep is the fewest remembered connections that start a sweep.
const minSweep = 64

func trackConns(ln net.Listener) *connTracker {
	return &connTracker{Listener: ln, conns: map[net.Conn]struct{}{}, sweepAt: minSweep}
}

// Accept implements net.Listener.
func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	l.mu.Lock()
	if len(l.conns) >= l.sweepAt {
		l.sweepLocked()
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return c, nil
}

// Open returns the number of accepted connections still open. Once the
// HTTP server's Shutdown has closed the idle ones, they are the ones
// serving a request (an HTTP/2 connection may serve several).
func (l *connTracker) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked()
	return len(l.conns)
}

// sweepLocked forgets the closed connections. The next sweep waits for
// the map to double, so that sweeps cost O(1) per connection.
func (l *connTracker) sweepLocked() {
	for c := range l.conns {
		if !isOpen(c) {
			delete(l.conns, c)
		}
	}
	l.sweepAt = max(2*len(l.conns), minSweep)
}

// isOpen reports whether c has not been closed: a closed connection
// refuses access to its descriptor.
func isOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	return rc.Control(func(uintptr) {}) == nil
}

// handlerTracker counts the handlers running. A shutdown that runs out of
// time closes the connections, and the handlers of the requests it cut
// run on until they notice (a read or write fails, their context ends, a
// write they queued commits): the server waits for them before it closes
// the store under them. It costs two atomic additions per request.
type handlerTracker struct {
	n atomic.Int64
}

// wrap returns h counted by t.
func (t *handlerTracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.n.Add(1)
		defer t.n.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// running returns the number of handlers running.
func (t *handlerTracker) running() int { return int(t.n.Load()) }

// drain waits until no handler runs, or for at most d, and returns the
// number still running.
func (t *handlerTracker) drain(d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		n := t.running()
		if n == 0 || !time.Now().Before(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}
