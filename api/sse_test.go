package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSSEFrames writes events of every kind in a row through one stream,
// a frame larger than the stream keeps among them, and checks the bytes
// exactly: a reused buffer must leave nothing of an earlier event behind.
func TestSSEFrames(t *testing.T) {
	big := `{"v":"` + strings.Repeat("x", sseKeep+10) + `"}`
	steps := []struct {
		name string
		send func(*sse) error
		want string
	}{
		{"revision", func(e *sse) error { return e.revision(42, []byte(`{"revision":42}`)) },
			"id: 42\nevent: revision\ndata: {\"revision\":42}\n\n"},
		{"event without id", func(e *sse) error { return e.event("close", "", []byte(`{}`)) },
			"event: close\ndata: {}\n\n"},
		{"larger than kept", func(e *sse) error { return e.revision(43, []byte(big)) },
			"id: 43\nevent: revision\ndata: " + big + "\n\n"},
		{"event with id", func(e *sse) error { return e.event("progress", "44", []byte(`{"revision":44}`)) },
			"id: 44\nevent: progress\ndata: {\"revision\":44}\n\n"},
		{"negative revision", func(e *sse) error { return e.revision(-1, nil) },
			"id: -1\nevent: revision\ndata: \n\n"},
	}
	rec := httptest.NewRecorder()
	e := &sse{w: rec}
	var want strings.Builder
	for _, st := range steps {
		if err := st.send(e); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want.WriteString(st.want)
		if got := rec.Body.String(); got != want.String() {
			t.Fatalf("after %s: stream is\n%q\nwant\n%q", st.name, truncate(got), truncate(want.String()))
		}
		if cap(e.buf) > sseKeep {
			t.Errorf("after %s: the stream keeps a %d-byte buffer, more than %d", st.name, cap(e.buf), sseKeep)
		}
	}
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:150] + "…" + s[len(s)-150:]
	}
	return s
}

// TestSSERevisionAllocates checks that a stream's revision events, once its
// buffer has grown, allocate nothing: with 1,000 watchers a commit is 1,000
// of them.
func TestSSERevisionAllocates(t *testing.T) {
	e := &sse{w: discardResponse{}}
	data := []byte(`{"revision":7,"commit":"0123456789abcdef0123456789abcdef01234567","changes":[{"key":"apps/a","op":"put"}]}`)
	rev := int64(1)
	allocs := testing.AllocsPerRun(100, func() {
		rev++
		if err := e.revision(rev, data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per revision event, want 0", allocs)
	}
}

// discardResponse is a ResponseWriter that drops what it is given.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}
