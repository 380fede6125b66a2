package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gorilla/mux"
)

// checkKVDispatch checks that ServeHTTP's direct dispatch of key routes
// takes exactly the requests gorilla/mux would route to the same route,
// with the same variables.
func checkKVDispatch(t *testing.T, s *Server, method, rawPath string) {
	t.Helper()
	u, err := url.Parse("http://localhost" + rawPath)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return // not a path a request line can carry as is
	}
	r := httptest.NewRequest(method, "http://localhost/", nil)
	r.URL = u
	var m mux.RouteMatch
	routed := s.router.Match(r, &m) && m.MatchErr == nil
	tmpl := ""
	if routed {
		tmpl, _ = m.Route.GetPathTemplate()
	}
	muxKV := routed && tmpl == muxPath(kvKeyRoute)

	v, ok := matchKV(r.URL.EscapedPath())
	direct := ok && s.kv[method] != nil
	if direct != muxKV {
		t.Fatalf("%s %q: direct dispatch %v, router to the key route %v (template %q)", method, rawPath, direct, muxKV, tmpl)
	}
	if direct && (v.repo != m.Vars["repo"] || v.key != m.Vars["key"]) {
		t.Fatalf("%s %q: direct vars %+v, router's %v", method, rawPath, v, m.Vars)
	}
}

func TestKVDispatchMatchesRouter(t *testing.T) {
	s := New(Options{})
	if len(s.kv) != 4 {
		t.Fatalf("direct key routes: %d, want GET, HEAD, PUT and DELETE", len(s.kv))
	}
	paths := []string{
		"/v1/repos/default/kv/apps/web.yaml",
		"/v1/repos/default/kv/a",
		"/v1/repos/default/kv/",
		"/v1/repos/default/kv",
		"/v1/repos//kv/a",
		"/v1/repos/default/kv//a",
		"/v1/repos/default/kv/a/",
		"/v1/repos/default/kv/a%2Fb",
		"/v1/repos/de%2Ffault/kv/a",
		"/v1/repos/default/kv/a%0Ab",
		"/v1/repos/default/kv/%E2%82%AC",
		"/v1/repos/default/kv/a b",
		"/v1/repos/default/txns/t1/kv/a",
		"/v1/repos/default/secrets/a",
		"/v1/repos/default",
		"/v1/repos/default/kvx/a",
		"/v2/repos/default/kv/a",
		"/v1/repos/default/kv/.gitstate/policy.yaml",
		"/v1/repos/default/kv/../x",
	}
	for _, p := range paths {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodPatch} {
			checkKVDispatch(t, s, m, p)
		}
	}
}

func FuzzKVDispatch(f *testing.F) {
	s := New(Options{})
	for _, p := range []string{"/v1/repos/default/kv/a/b", "/v1/repos/x/kv/", "/v1/repos/x/txns/y/kv/z", "/v1/repos/a%2F/kv/%0A"} {
		f.Add(http.MethodPut, p)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		if method != http.MethodGet && method != http.MethodPut && method != http.MethodPost {
			method = http.MethodDelete
		}
		checkKVDispatch(t, s, method, path)
	})
}
