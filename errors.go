package gitstate

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error by what the caller can do about it. Every layer
// reports errors with a Kind; the API maps each Kind to one HTTP status, and
// the Go client maps the status back, so a Kind survives the wire.
type Kind uint8

// The kinds of error. The comment gives the HTTP status the API uses.
const (
	KindInternal        Kind = iota // 500: a bug or an I/O failure
	KindInvalid                     // 400: the request is malformed
	KindUnauthorized                // 401: no valid credentials
	KindForbidden                   // 403: credentials lack a permission
	KindNotFound                    // 404: the thing named does not exist
	KindConflict                    // 409: the state changed or is incompatible
	KindPrecondition                // 412: a precondition (If-Match...) failed
	KindTooLarge                    // 413: a body or value is over a limit
	KindUnprocessable               // 422: well-formed but refused by a policy or schema
	KindTooManyRequests             // 429: rate limited
	KindUnavailable                 // 503: shutting down or not ready
)

var kindNames = [...]string{
	KindInternal:        "internal",
	KindInvalid:         "invalid",
	KindUnauthorized:    "unauthorized",
	KindForbidden:       "forbidden",
	KindNotFound:        "not_found",
	KindConflict:        "conflict",
	KindPrecondition:    "precondition_failed",
	KindTooLarge:        "too_large",
	KindUnprocessable:   "unprocessable",
	KindTooManyRequests: "too_many_requests",
	KindUnavailable:     "unavailable",
}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is the error type of gitstate. Code is a stable snake_case string
// (the "code" of the wire error); Message is for people; Keys names the keys
// involved, when there are any.
//
// errors.Is(err, target) holds when target is an *Error with the same Code
// (or, when target has no Code, the same Kind), so the sentinels below can be
// matched whatever message a particular error carries.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Keys    []string
	// Details locates the problem inside a value (a schema violation's
	// paths), when there is one.
	Details []Detail
	// Err is the underlying cause, if any. It is not sent over the wire.
	Err error
}

// Detail is one located problem: Path is a JSON pointer into a value.
type Detail struct {
	Key     string `json:"key,omitempty"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code (or kind, when
// target has no code).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t.Code != "" {
		return t.Code == e.Code
	}
	return t.Kind == e.Kind
}

// Errorf returns an *Error of the given kind and code with a formatted
// message. A %w verb in format sets Err.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	e := &Error{Kind: kind, Code: code, Message: err.Error()}
	if u := errors.Unwrap(err); u != nil {
		e.Err = u
		// Keep the message free of the cause's text: Error() appends it.
		e.Message = strings.TrimSuffix(strings.TrimSuffix(e.Message, u.Error()), ": ")
	}
	return e
}

// WithKeys returns a copy of e naming keys.
func (e *Error) WithKeys(keys ...string) *Error {
	c := *e
	c.Keys = append([]string(nil), keys...)
	return &c
}

// KindOf returns the Kind of the first *Error in err's chain, or
// KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Sentinels for matching with errors.Is. Each is matched by its Code.
var (
	ErrInvalidKey       = &Error{Kind: KindInvalid, Code: "invalid_key"}
	ErrInvalidRepoName  = &Error{Kind: KindInvalid, Code: "invalid_repo_name"}
	ErrInvalidRevision  = &Error{Kind: KindInvalid, Code: "invalid_revision"}
	ErrInvalidRequest   = &Error{Kind: KindInvalid, Code: "invalid_request"}
	ErrReservedKey      = &Error{Kind: KindForbidden, Code: "reserved_key"}
	ErrRepoNotFound     = &Error{Kind: KindNotFound, Code: "repo_not_found"}
	ErrKeyNotFound      = &Error{Kind: KindNotFound, Code: "key_not_found"}
	ErrRevisionNotFound = &Error{Kind: KindNotFound, Code: "revision_not_found"}
	ErrRepoExists       = &Error{Kind: KindConflict, Code: "repo_exists"}
	ErrKeyConflict      = &Error{Kind: KindConflict, Code: "key_conflict"}
	ErrChangedSinceBase = &Error{Kind: KindConflict, Code: "changed_since_base"}
	// ErrChangedConcurrently: what a change was prepared from changed
	// before it could apply (see storage.Batch.Unchanged).
	ErrChangedConcurrently = &Error{Kind: KindConflict, Code: "changed_concurrently"}
	ErrPreconditionFailed  = &Error{Kind: KindPrecondition, Code: "precondition_failed"}
	ErrValueTooLarge       = &Error{Kind: KindTooLarge, Code: "value_too_large"}
	ErrUnavailable         = &Error{Kind: KindUnavailable, Code: "unavailable"}
)
