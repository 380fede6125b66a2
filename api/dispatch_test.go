package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
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

// TestMethodNotAllowedAllow checks that a 405 lists, in Allow, the methods
// the path is served with (RFC 9110, 15.5.6): for a few paths by hand, then
// for every route of the table.
func TestMethodNotAllowedAllow(t *testing.T) {
	s := New(Options{})
	serve := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(method, "http://localhost"+path, nil))
		return w
	}
	tests := []struct{ method, path, allow string }{
		{http.MethodPatch, "/v1/repos/default/kv/a/b", "GET, HEAD, PUT, DELETE"},
		{http.MethodPost, "/v1/repos/default/kv/a", "GET, HEAD, PUT, DELETE"},
		{http.MethodPost, "/v1/repos/default/kv", "GET"},
		{http.MethodDelete, "/v1/repos", "GET, POST"},
		{http.MethodPut, "/v1/repos/default/commits", "GET, POST"},
		{http.MethodPost, "/v1/repos/default/watch", "GET"},
		{http.MethodPatch, "/v1/repos/default/txns/t1/kv/a", "GET, HEAD, PUT, DELETE"},
		{http.MethodGet, "/git/default.git/git-receive-pack", "POST"},
		{http.MethodPatch, "/v1/repos/default/secrets/rotate", "GET, POST, PUT, DELETE"}, // also the secret "rotate"
	}
	for _, tt := range tests {
		w := serve(tt.method, tt.path)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, Allow %q", tt.method, tt.path, w.Code, w.Header().Get("Allow"), tt.allow)
		}
	}
	if w := serve(http.MethodGet, "/v1/repos/default/nothing"); w.Code != http.StatusNotFound || w.Header().Get("Allow") != "" {
		t.Errorf("unknown path: %d, Allow %q; want 404 without Allow", w.Code, w.Header().Get("Allow"))
	}

	// Every route: a method no route serves lists at least its route's
	// methods (a path may match other routes too: secrets/rotate is also
	// the secret named "rotate").
	order := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	methods := map[string][]string{}
	for _, rt := range s.Routes() {
		if !slices.Contains(order, rt.Method) {
			t.Fatalf("route %s %s: add its method to this test's order", rt.Method, rt.Path)
		}
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	fill := strings.NewReplacer("{repo}", "default", "{key}", "a/b", "{id}", "t1", "{rev}", "1", "{name}", "n")
	for tmpl, ms := range methods {
		path := fill.Replace(tmpl)
		w := serve("PROPFIND", path)
		allow := strings.Split(w.Header().Get("Allow"), ", ")
		if w.Code != http.StatusMethodNotAllowed || slices.ContainsFunc(ms, func(m string) bool { return !slices.Contains(allow, m) }) {
			t.Errorf("PROPFIND %s: %d, Allow %q; want 405, Allow with %q", path, w.Code, w.Header().Get("Allow"), ms)
		}
	}
}
