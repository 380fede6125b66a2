package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gitstate/gitstate/api/wire"
)

// WatchOptions selects what a watch streams. The zero value streams main's
// revisions from the head on.
type WatchOptions struct {
	// From resumes after this revision (a number or a commit id; "0" for
	// the whole history). Empty starts at the head. On a transaction's
	// branch it is the full commit id of an event of that branch (empty or
	// "0": the whole transaction); another is refused (invalid_revision,
	// or revision_not_found for a commit not on the branch).
	From wire.Rev
	// Prefix keeps the changes under it; revisions that change nothing
	// under it are skipped (a progress event says so).
	Prefix string
	// Branch is "main" (the default) or "txn/<id>" to follow a
	// transaction's branch.
	Branch string
	// Progress is the interval of progress events (0: the server's
	// default, 10s; at least 1s).
	Progress time.Duration
}

// Event types of a watch.
const (
	EventRevision = "revision"
	EventProgress = "progress"
	EventClose    = "close"
)

// Event is one event of a watch. Exactly one of Revision, Progress and
// Close is set, as Type says.
type Event struct {
	Type string
	// ID is the event's id: the revision (or, on a transaction's branch,
	// the commit id) to resume from.
	ID       string
	Revision *wire.WatchEvent
	Progress *wire.WatchProgress
	Close    *wire.WatchClose
}

// Watcher is an open watch stream. It is not safe for concurrent use.
type Watcher struct {
	resp   *http.Response
	rd     *bufio.Reader
	cancel context.CancelFunc
}

// Watch opens a stream of the repo's revisions (GET /v1/repos/{repo}/watch,
// Server-Sent Events). Read it with Next; Close it when done. opts may be
// nil. The stream lasts until ctx is done, Close is called, or the server
// ends it (Next then returns a close event, then io.EOF).
func (r *Repo) Watch(ctx context.Context, opts *WatchOptions) (*Watcher, error) {
	if opts == nil {
		opts = &WatchOptions{}
	}
	q := url.Values{}
	if opts.From != "" {
		q.Set("from", string(opts.From))
	}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.Branch != "" {
		q.Set("branch", opts.Branch)
	}
	if opts.Progress > 0 {
		q.Set("progress", opts.Progress.String())
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := r.c.newRequest(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/watch"), query: q,
		header: http.Header{"Accept": {"text/event-stream"}}})
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := r.c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer closeBody(resp)
		return nil, errorOf(resp)
	}
	return &Watcher{resp: resp, rd: bufio.NewReaderSize(resp.Body, 64<<10), cancel: cancel}, nil
}

// From returns the revision the stream's events follow (the server's
// X-Gitstate-Watch-From): the one asked for, or the head when the watch
// started from now. Resuming from it after a stream that ended before its
// first event misses nothing. It is empty on a transaction's branch, and
// from a server that does not say.
func (w *Watcher) From() wire.Rev {
	return wire.Rev(w.resp.Header.Get(wire.HeaderWatchFrom))
}

// Next returns the next event, blocking until one comes. It returns io.EOF
// when the stream ended.
func (w *Watcher) Next() (*Event, error) {
	var typ, id string
	var data strings.Builder
	for {
		line, err := w.rd.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return nil, io.EOF
			}
			if err != io.EOF {
				return nil, err
			}
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if typ == "" && data.Len() == 0 {
				if err == io.EOF {
					return nil, io.EOF
				}
				continue
			}
			if typ == "" {
				typ = "message"
			}
			return decodeEvent(typ, id, data.String())
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "id":
			id = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
}

func decodeEvent(typ, id, data string) (*Event, error) {
	ev := &Event{Type: typ, ID: id}
	var target any
	switch typ {
	case EventRevision:
		ev.Revision = &wire.WatchEvent{}
		target = ev.Revision
	case EventProgress:
		ev.Progress = &wire.WatchProgress{}
		target = ev.Progress
	case EventClose:
		ev.Close = &wire.WatchClose{}
		target = ev.Close
	default:
		return ev, nil // an event type this client does not know
	}
	if err := json.Unmarshal([]byte(data), target); err != nil {
		return nil, fmt.Errorf("gitstate client: watch: decode %s event: %w", typ, err)
	}
	return ev, nil
}

// Close ends the stream.
func (w *Watcher) Close() error {
	w.cancel()
	return w.resp.Body.Close()
}
