package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHandlerTrackerDrain: drain counts a handler from its start to its
// return, gives up after its bound with the number still running, and
// returns none running once the last one is done.
func TestHandlerTrackerDrain(t *testing.T) {
	var tr handlerTracker
	entered, release := make(chan struct{}), make(chan struct{})
	h := tr.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		panic(http.ErrAbortHandler) // a handler that panics is counted out too
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	<-entered
	if n := tr.drain(50 * time.Millisecond); n != 1 {
		t.Fatalf("drain with a handler blocked: %d running, want 1", n)
	}
	close(release)
	<-done
	if n := tr.drain(time.Minute); n != 0 {
		t.Fatalf("drain after the handler returned: %d running, want 0", n)
	}
}
