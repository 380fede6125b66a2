package client

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// MissingError is the cause of a 403 error: what the token lacks, as the
// server names it ("scope:write", "repo:prod", "prefix:apps/web/x").
// Find it with errors.As, or use MissingOf.
type MissingError struct {
	What string
}

// Error implements error.
func (e *MissingError) Error() string { return "missing " + e.What }

// MissingOf returns what a 403 error says the token lacks, or "".
func MissingOf(err error) string {
	var m *MissingError
	if errors.As(err, &m) {
		return m.What
	}
	return ""
}

// kindOfStatus maps an HTTP status back to an error kind. It is the reverse
// of the server's mapping (api.KindOfStatus), copied here so that the client
// does not link the server; a test checks that the two agree.
func kindOfStatus(status int) gitstate.Kind {
	switch status {
	case http.StatusBadRequest:
		return gitstate.KindInvalid
	case http.StatusUnauthorized:
		return gitstate.KindUnauthorized
	case http.StatusForbidden:
		return gitstate.KindForbidden
	case http.StatusNotFound:
		return gitstate.KindNotFound
	case http.StatusConflict:
		return gitstate.KindConflict
	case http.StatusPreconditionFailed:
		return gitstate.KindPrecondition
	case http.StatusRequestEntityTooLarge:
		return gitstate.KindTooLarge
	case http.StatusUnprocessableEntity:
		return gitstate.KindUnprocessable
	case http.StatusTooManyRequests:
		return gitstate.KindTooManyRequests
	case http.StatusServiceUnavailable:
		return gitstate.KindUnavailable
	}
	return gitstate.KindInternal
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// errorOf turns a non-2xx response into a *gitstate.Error. A body that is
// not the API's JSON error (a proxy's page, a HEAD response) gives the code
// of the status's kind and a message quoting the status.
func errorOf(resp *http.Response) error {
	kind := kindOfStatus(resp.StatusCode)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var er wire.ErrorResponse
	if err := json.Unmarshal(body, &er); err == nil && er.Error.Code != "" {
		e := &gitstate.Error{Kind: kind, Code: er.Error.Code, Message: er.Error.Message, Keys: er.Error.Keys}
		for _, d := range er.Error.Details {
			e.Details = append(e.Details, gitstate.Detail{Key: d.Key, Path: d.Path, Message: d.Message})
		}
		if er.Error.Missing != "" {
			e.Err = &MissingError{What: er.Error.Missing}
		}
		return e
	}
	msg := "HTTP " + resp.Status
	if s := strings.TrimSpace(string(body)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		msg += ": " + s
	}
	return &gitstate.Error{Kind: kind, Code: kind.String(), Message: msg}
}
