package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPutStalledClient pipelines PUTs on a connection that never reads its
// answers, until the socket's buffers are full. The committer sends PUT
// answers itself (writeAnswer): this checks that such a client loses its
// connection instead of stalling the commits of every other client.
func TestPutStalledClient(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	u, err := url.Parse(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		})
		return errors.Join(err, serr)
	}}
	start := time.Now()
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		w := bufio.NewWriter(conn)
		for i := range 20000 {
			fmt.Fprintf(w, "PUT /v1/repos/default/kv/stall/k%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1\r\n\r\nv", i, adminToken)
			if w.Buffered() > 16<<10 {
				if w.Flush() != nil {
					return // the server closed the connection
				}
			}
		}
		w.Flush()
	}()
	// Wait until the pipelined writes stop landing: the answers filled
	// the buffers.
	last, still := int64(-1), 0
	for still < 5 {
		time.Sleep(100 * time.Millisecond)
		h := ts.head(t, "default").Revision
		if h == last {
			still++
		} else {
			last, still = h, 0
		}
	}
	if last < 10 {
		t.Fatalf("only %d pipelined writes landed", last)
	}
	t.Logf("%d pipelined writes landed after %v", last, time.Since(start))
	// Another client's writes go through.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, ts.url+fmt.Sprintf("/v1/repos/default/kv/other/k%d", i), strings.NewReader("v"))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("PUT while a client stalls: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT while a client stalls: %s", resp.Status)
		}
	}
	if got := ts.get(t, "other/k4"); got != "v" {
		t.Fatalf("other/k4 = %q", got)
	}
	t.Logf("other writes done after %v", time.Since(start))
	// The stalled connection was closed: reading it ends.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	t.Logf("read %d bytes of answers, then %v, after %v", n, err, time.Since(start))
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the stalled connection: %v", err)
	}
}
