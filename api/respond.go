package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// statusOf maps an error kind to its HTTP status: the one place where
// errors meet the wire.
func statusOf(k gitstate.Kind) int {
	switch k {
	case gitstate.KindInvalid:
		return http.StatusBadRequest
	case gitstate.KindUnauthorized:
		return http.StatusUnauthorized
	case gitstate.KindForbidden:
		return http.StatusForbidden
	case gitstate.KindNotFound:
		return http.StatusNotFound
	case gitstate.KindConflict:
		return http.StatusConflict
	case gitstate.KindPrecondition:
		return http.StatusPreconditionFailed
	case gitstate.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case gitstate.KindUnprocessable:
		return http.StatusUnprocessableEntity
	case gitstate.KindTooManyRequests:
		return http.StatusTooManyRequests
	case gitstate.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// KindOfStatus maps an HTTP status back to an error kind (for clients).
func KindOfStatus(status int) gitstate.Kind {
	for k := gitstate.KindInvalid; k <= gitstate.KindUnavailable; k++ {
		if statusOf(k) == status {
			return k
		}
	}
	return gitstate.KindInternal
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError writes err as a JSON error. Internal errors are logged and
// sent without their details.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ge *gitstate.Error
	canceled := false
	if !errors.As(err, &ge) {
		if errors.Is(err, r.Context().Err()) && r.Context().Err() != nil {
			ge = gitstate.Errorf(gitstate.KindUnavailable, "canceled", "request canceled")
			canceled = true
		} else {
			ge = &gitstate.Error{Kind: gitstate.KindInternal, Code: "internal", Message: "internal error", Err: err}
		}
	}
	status := statusOf(ge.Kind)
	switch {
	case canceled:
		// The client went away (or gave up) before its answer: nothing
		// failed on this side, and no one reads the answer.
		s.log.Debug("request canceled by its client", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r))
	case status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
	}
	info := infoOf(r)
	if info != nil && len(ge.Keys) > 0 && len(info.keys) == 0 {
		info.keys = ge.Keys
	}
	msg := ge.Message
	if ge.Kind == gitstate.KindInternal {
		msg = "internal error (request " + requestID(r) + ")"
	}
	switch ge.Kind {
	case gitstate.KindTooManyRequests:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ge)))
		}
	case gitstate.KindUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="gitstate"`)
	}
	if info != nil && info.git {
		// The git client sends credentials only when asked for basic ones
		// (the token goes as the password), and shows a text/plain body of
		// an error response on its "remote:" lines.
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="gitstate", charset="UTF-8"`)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "gitstate: %s: %s\n", ge.Code, msg)
		return
	}
	writeJSON(w, status, wire.ErrorResponse{Error: wire.Error{Code: ge.Code, Message: msg, Keys: ge.Keys, Missing: missingOf(ge), Details: wireDetails(ge.Details)}})
}

// wireDetails converts an error's details for the wire.
func wireDetails(ds []gitstate.Detail) []wire.Detail {
	if len(ds) == 0 {
		return nil
	}
	out := make([]wire.Detail, len(ds))
	for i, d := range ds {
		out[i] = wire.Detail{Key: d.Key, Path: d.Path, Message: d.Message}
	}
	return out
}

// missingOf returns what a 403 says the caller lacks.
func missingOf(e *gitstate.Error) string {
	var m *missingErr
	if errors.As(e, &m) {
		return m.what
	}
	return ""
}

// retryAfterSeconds returns the whole seconds (at least 1) a rate-limited
// caller should wait.
func retryAfterSeconds(e *gitstate.Error) int {
	var ra *RetryAfter
	if errors.As(e, &ra) && ra.After > time.Second {
		return int((ra.After + time.Second - 1) / time.Second)
	}
	return 1
}

type missingErr struct{ what string }

func (m *missingErr) Error() string { return "missing " + m.what }

func badRequest(format string, args ...any) error {
	return gitstate.Errorf(gitstate.KindInvalid, "invalid_request", format, args...)
}

// decodeJSON reads a JSON body into v, refusing unknown fields, trailing
// data and bodies over the limit.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return gitstate.Errorf(gitstate.KindTooLarge, "body_too_large", "request body is over %d bytes", mbe.Limit)
		}
		if errors.Is(err, io.EOF) {
			return badRequest("request body is empty; JSON expected")
		}
		return badRequest("malformed JSON: %s", jsonErrText(err))
	}
	if dec.More() {
		return badRequest("malformed JSON: data after the object")
	}
	return nil
}

// jsonErrText describes a decoding error in the API's terms: JSON types
// and the fields' JSON names, never the Go types behind them.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		got := jsonValueName(te.Value)
		if te.Field == "" {
			return fmt.Sprintf("the body must be %s, not %s", jsonTypeName(te.Type), got)
		}
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, jsonTypeName(te.Type), got)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends before its JSON does"
	}
	// encoding/json's other messages ("json: unknown field \"x\"") name
	// JSON things already.
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonTypeName names, with its article, the JSON type that decodes into t.
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return "a string (base64)"
		}
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another JSON value"
}

// jsonValueName names, with its article, a JSON value as
// json.UnmarshalTypeError.Value describes it ("number 1.5", "array").
func jsonValueName(v string) string {
	switch kind, lit, _ := strings.Cut(v, " "); {
	case lit != "":
		return "the " + kind + " " + lit
	case kind == "array" || kind == "object":
		return "an " + kind
	case kind == "bool":
		return "a boolean"
	default:
		return "a " + kind
	}
}

// readBody reads a raw body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, gitstate.Errorf(gitstate.KindTooLarge, "value_too_large", "value is over %d bytes", limit)
	}
	if r.ContentLength >= 0 {
		// The length is known: read into one buffer of that size, instead
		// of growing one from 512 bytes (a write's largest allocation in
		// the API). net/http ends the body at the declared length.
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, bodyError(err, limit)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, bodyError(err, limit)
	}
	if int64(len(b)) > limit {
		return nil, gitstate.Errorf(gitstate.KindTooLarge, "value_too_large", "value is over %d bytes", limit)
	}
	return b, nil
}

// bodyError is the error for a request body that could not be read.
func bodyError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return gitstate.Errorf(gitstate.KindTooLarge, "value_too_large", "value is over %d bytes", limit)
	}
	return badRequest("read body: %v", err)
}
