package server

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReadTimeoutSparesLongAnswers: the server's read timeout cuts a
// request whose body stalls, but not an answer that streams long after
// its request was read, and the handler's context stays alive: watch
// streams need both.
func TestReadTimeoutSparesLongAnswers(t *testing.T) {
	const d = 200 * time.Millisecond
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.ReadTimeout = d
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		for i := range 3 {
			select {
			case <-r.Context().Done():
				io.WriteString(w, "canceled\n")
				return
			case <-time.After(d):
			}
			io.WriteString(w, strings.Repeat(string(b), i+1)+"\n")
			w.(http.Flusher).Flush()
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(&cfg, h, nil)
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()

	for _, body := range []string{"x", ""} {
		method := http.MethodPost
		if body == "" {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := strings.Repeat(body, 1) + "\n" + strings.Repeat(body, 2) + "\n" + strings.Repeat(body, 3) + "\n"
		if resp.StatusCode != http.StatusOK || string(b) != want {
			t.Errorf("%s answering for %v: %d %q, want %q", method, 3*d, resp.StatusCode, b, want)
		}
	}

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body: %d", resp.StatusCode)
	}
}
