package client

import (
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
)

// TestKindOfStatusAgreesWithServer checks the client's copy of the
// status-to-kind mapping against the server's for every status, and that
// every Kind survives the round trip (a Kind added to the server without a
// status, or to the client's copy, fails here).
func TestKindOfStatusAgreesWithServer(t *testing.T) {
	seen := map[gitstate.Kind]bool{}
	for status := 100; status <= 599; status++ {
		want := api.KindOfStatus(status)
		if got := kindOfStatus(status); got != want {
			t.Errorf("kindOfStatus(%d) = %v, server says %v", status, got, want)
		}
		seen[want] = true
	}
	for k := gitstate.Kind(0); !strings.HasPrefix(k.String(), "kind("); k++ {
		if !seen[k] {
			t.Errorf("no HTTP status maps to kind %v", k)
		}
	}
}
