package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWriteErrorLogLevel: a request whose client went away is answered
// "canceled" and logged at debug (nothing failed on the server's side),
// while an internal error is logged as an error, without its details in
// the answer.
func TestWriteErrorLogLevel(t *testing.T) {
	tests := []struct {
		name       string
		cancel     bool
		err        error
		wantStatus int
		wantCode   string
		wantLevel  string
	}{
		{"client gone", true, context.Canceled, http.StatusServiceUnavailable, "canceled", "level=DEBUG"},
		{"internal", false, errors.New("the disk is on fire"), http.StatusInternalServerError, "internal", "level=ERROR"},
		{"context error of another request", false, context.Canceled, http.StatusInternalServerError, "internal", "level=ERROR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			s := &Server{log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			r := httptest.NewRequest(http.MethodPut, "/v1/repos/default/kv/a", nil).WithContext(ctx)
			w := httptest.NewRecorder()
			s.writeError(w, r, tc.err)
			if w.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tc.wantStatus)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if body.Error.Code != tc.wantCode {
				t.Errorf("code %q, want %q", body.Error.Code, tc.wantCode)
			}
			if strings.Contains(body.Error.Message, "fire") {
				t.Errorf("the answer shows the internal error: %q", body.Error.Message)
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.wantLevel) {
				t.Errorf("log %q, want one line at %s", log.String(), tc.wantLevel)
			}
		})
	}
}
