package server

import (
	"net"
	"sync"
	"syscall"
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
