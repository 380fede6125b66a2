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

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
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

// TestDecodeJSONMessages checks that a body that does not decode is
// described in JSON's terms (JSON types, the fields' JSON names), never
// with the Go types behind them.
func TestDecodeJSONMessages(t *testing.T) {
	var commit wire.CommitRequest
	var revert wire.RevertRequest
	var other struct {
		N int64  `json:"n"`
		U uint   `json:"u"`
		B []byte `json:"b"`
	}
	tests := []struct {
		name string
		v    any
		body string
		want string
	}{
		{"array for the body", &commit, `[]`, "malformed JSON: the body must be an object, not an array"},
		{"string for the body", &commit, `"ops"`, "malformed JSON: the body must be an object, not a string"},
		{"number for a string", &commit, `{"message":1}`, `malformed JSON: field "message" must be a string, not a number`},
		{"string for an array", &commit, `{"ops":"put"}`, `malformed JSON: field "ops" must be an array, not a string`},
		{"number for an object", &commit, `{"ops":[1]}`, `malformed JSON: field "ops" must be an object, not a number`},
		{"nested field", &commit, `{"ops":[{"op":"put","key":"k","value":true}]}`, `malformed JSON: field "ops.value" must be a string, not a boolean`},
		{"string for a boolean", &revert, `{"revision":1,"force":"yes"}`, `malformed JSON: field "force" must be true or false, not a string`},
		{"fraction for an integer", &other, `{"n":1.5}`, `malformed JSON: field "n" must be an integer, not the number 1.5`},
		{"negative for an unsigned", &other, `{"u":-1}`, `malformed JSON: field "u" must be a non-negative integer, not the number -1`},
		{"number for bytes", &other, `{"b":1}`, `malformed JSON: field "b" must be a string (base64), not a number`},
		{"unknown field", &commit, `{"opps":[]}`, `malformed JSON: unknown field "opps"`},
		{"truncated", &commit, `{"ops":[`, "malformed JSON: the body ends before its JSON does"},
		{"syntax", &commit, `{"ops":]`, "malformed JSON: syntax error at byte 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/repos/default/commits", strings.NewReader(tt.body))
			err := decodeJSON(r, tt.v)
			var ge *gitstate.Error
			if !errors.As(err, &ge) || ge.Code != "invalid_request" {
				t.Fatalf("error %v, want invalid_request", err)
			}
			if ge.Message != tt.want {
				t.Errorf("message %q, want %q", ge.Message, tt.want)
			}
		})
	}
}
