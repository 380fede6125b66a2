// Package api serves gitstate's HTTP API: the handlers, their routes and
// middleware (request ids, authentication, audit, metrics). Wire types live
// in api/wire; openapi.yaml at the repository root specifies every route, and
// a test keeps the two in step.
package api

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
	"github.com/gitstate/gitstate/watch"
)

// Options configures a Server.
type Options struct {
	Store *storage.Store
	// Auth identifies callers. Nil lets every request in as an
	// unrestricted administrator named "anonymous" (for embedding and tests).
	Auth Authenticator
	// Auditor, if set, records mutating, denied and secret-reading
	// requests before they are answered.
	Auditor Auditor
	// AuditLog, if set, serves GET /v1/audit.
	AuditLog AuditReader
	// Tokens, if set, serves /v1/tokens.
	Tokens TokenService
	// Failures, if set, limits the failed authentications of client
	// addresses on the routes that Auth does not cover: upstream
	// webhooks' signatures and Git's challenges (see FailureLimiter).
	Failures FailureLimiter
	// Streams, if set, bounds the watch streams each token holds open.
	Streams StreamLimiter
	Logger  *slog.Logger
	// Registry serves /metrics and receives the API's metrics.
	Registry *prometheus.Registry
	// MetricsAuth requires a token with scope read for /metrics.
	MetricsAuth bool
	// MaxBodyBytes bounds JSON request bodies (default 32 MiB).
	MaxBodyBytes int64
	// MaxValueSize bounds values (default 1 MiB; keep it equal to the
	// store's).
	MaxValueSize int64
	// Ready reports whether the server is ready (default: always).
	Ready func() error
	// CommitEmail builds the author email from a principal's name (default
	// "<name>@gitstate.local").
	CommitEmail func(name string) string
	// Txns runs branch transactions (nil: the txn routes answer 404).
	Txns *txn.Manager
	// Secrets encrypts and decrypts secrets (nil: the secrets routes
	// answer 404; a secret's file written through the kv routes must
	// still be an encrypted document).
	Secrets Secrets
	// Watch serves revision streams (nil: watch answers 404).
	Watch *watch.Hub
	// WatchProgress is the interval of progress events (default 10s).
	WatchProgress time.Duration
	// Webhooks delivers revisions to HTTP endpoints (nil: the webhook
	// routes answer 404).
	Webhooks *watch.Webhooks
	// Convergence records reconcilers' reports (nil: the reconciler and
	// rollout routes answer 404).
	Convergence *watch.Convergence
	// Upstreams runs each repo's upstream (nil: the upstream routes answer
	// 404).
	Upstreams Upstreams
	// MaxPushBytes bounds a git push: its request body, and its objects
	// once inflated (default 256 MiB).
	MaxPushBytes int64
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	opts   Options
	store  *storage.Store
	log    *slog.Logger
	router *mux.Router
	routes []Route
	// kv holds main's key routes (/v1/repos/{repo}/kv/{key}) by method,
	// wrapped: ServeHTTP dispatches them without the router.
	kv map[string]func(http.ResponseWriter, *http.Request, *kvVars)

	reqDuration *prometheus.HistogramVec
}

// Route describes one route of the API.
type Route struct {
	Method string
	// Path is the route's template as in openapi.yaml ({key} for keys).
	Path string
	// Action names the route in logs, metrics and the audit log.
	Action string
	// Open routes need no authentication.
	Open bool
	// Git routes speak Git's smart HTTP protocol, not JSON: Git's own
	// documentation specifies them, not openapi.yaml (docs/GIT.md says
	// which); their errors are plain text, which the git client shows, and
	// a 401 asks for basic credentials, which the git client sends.
	Git bool
	// ReadOnly marks a POST that changes nothing (a fetch): the audit log
	// skips it like a GET.
	ReadOnly bool
	// MaxBody bounds the request body (0: Options.MaxBodyBytes).
	MaxBody int64
	handler http.HandlerFunc
	// unrouted marks the answers to requests no route serves (404, 405):
	// their Path is empty, and a mutating one is authenticated and
	// audited as on an authenticated route.
	unrouted bool
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.MaxValueSize <= 0 {
		opts.MaxValueSize = 1 << 20
	}
	if opts.MaxPushBytes <= 0 {
		opts.MaxPushBytes = 256 << 20
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.WatchProgress <= 0 {
		opts.WatchProgress = 10 * time.Second
	}
	if opts.CommitEmail == nil {
		opts.CommitEmail = func(name string) string { return name + "@gitstate.local" }
	}
	s := &Server{opts: opts, store: opts.Store, log: opts.Logger}
	s.reqDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gitstate_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"route", "method", "status"})
	opts.Registry.MustRegister(s.reqDuration)
	s.router = mux.NewRouter()
	// Keys are validated by the handlers: no path cleaning or redirects.
	s.router.SkipClean(true)
	s.router.UseEncodedPath()
	s.routes = s.routeTable()
	// gorilla/mux tries routes in order, one regular expression each:
	// register the key-value routes, which take most requests, first.
	ordered := slices.Clone(s.routes)
	slices.SortStableFunc(ordered, func(a, b Route) int {
		return cmp.Compare(routeRank(a), routeRank(b))
	})
	s.kv = make(map[string]func(http.ResponseWriter, *http.Request, *kvVars))
	for _, rt := range ordered {
		// Path before Methods: gorilla/mux 1.8.1 forgets a method mismatch
		// (405) when a later route has the same method, but not when it has
		// another path.
		s.router.Path(muxPath(rt.Path)).Methods(rt.Method).Handler(s.wrap(rt))
		if rt.Path == kvKeyRoute {
			s.kv[rt.Method] = func(w http.ResponseWriter, r *http.Request, v *kvVars) { s.serve(rt, w, r, v) }
		}
	}
	// A request no route serves goes through the same middleware as
	// the others: it gets its X-Request-Id, its metrics and its log, and
	// a mutating one its authentication and its audit line.
	s.router.NotFoundHandler = s.wrap(Route{Action: "not_found", Open: true, unrouted: true,
		handler: func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, gitstate.Errorf(gitstate.KindNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path))
		}})
	s.router.MethodNotAllowedHandler = s.wrap(Route{Action: "method_not_allowed", Open: true, unrouted: true,
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", s.allowed(r))
			writeJSON(w, http.StatusMethodNotAllowed, errBody("method_not_allowed", r.Method+" is not allowed on "+r.URL.Path))
		}})
	return s
}

// allowed returns the Allow header of a 405 for r: the methods some route
// serves at r's path, asked of the router one method at a time. Only a 405
// pays for it.
func (s *Server) allowed(r *http.Request) string {
	var b strings.Builder
	// The methods routes serve, in the order the header lists them.
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		req := r.WithContext(r.Context())
		req.Method = m
		var match mux.RouteMatch
		if s.router.Match(req, &match) && match.MatchErr == nil {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(m)
		}
	}
	return b.String()
}

func errBody(code, msg string) any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

// routeRank orders route registration: main's key-value routes first.
func routeRank(rt Route) int {
	if strings.HasPrefix(rt.Path, "/v1/repos/{repo}/kv") {
		return 0
	}
	return 1
}

// muxPath turns an OpenAPI template into a gorilla/mux one: {key} matches
// the rest of the path.
func muxPath(p string) string {
	p = strings.ReplaceAll(p, "{key}", "{key:.+}")
	return p
}

// Routes returns every route the server serves.
func (s *Server) Routes() []Route { return s.routes }

// kvKeyRoute is the route of a key on main, which takes most requests.
const kvKeyRoute = "/v1/repos/{repo}/kv/{key}"

// kvVars are the variables of kvKeyRoute, as gorilla/mux gives them (still
// escaped: the router matches the escaped path).
type kvVars struct{ repo, key string }

// ServeHTTP implements http.Handler. Requests for a key on main are
// dispatched directly; gorilla/mux routes every other request. The router
// matches a path against one regular expression per route, in order, and
// copies the request to attach its variables: on a PUT of a key that was
// ~3% of the server's CPU, on a GET more. The direct dispatch takes exactly the
// requests the router would give the same handlers (see matchKV, and
// TestKVDispatchMatchesRouter).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if v, ok := matchKV(r.URL.EscapedPath()); ok {
		if h := s.kv[r.Method]; h != nil {
			h(w, r, &v)
			return
		}
	}
	s.router.ServeHTTP(w, r)
}

// matchKV matches path, escaped, against kvKeyRoute as the router does
// (muxPath: {repo} is one segment, [^/]+, and {key} the rest, .+).
func matchKV(path string) (kvVars, bool) {
	rest, ok := strings.CutPrefix(path, "/v1/repos/")
	if !ok {
		return kvVars{}, false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return kvVars{}, false
	}
	key, ok := strings.CutPrefix(rest[i:], "/kv/")
	if !ok || key == "" || strings.ContainsRune(key, '\n') {
		return kvVars{}, false
	}
	return kvVars{repo: rest[:i], key: key}, true
}

// pathVar returns the path variable name of r's route ("" when the route
// has none).
func pathVar(r *http.Request, name string) string {
	if i := infoOf(r); i != nil && i.vars != nil {
		switch name {
		case "repo":
			return i.vars.repo
		case "key":
			return i.vars.key
		}
		return ""
	}
	return mux.Vars(r)[name]
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and performs the audit before the
// response's first byte.
type statusWriter struct {
	http.ResponseWriter
	status  int
	before  func(status int)
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.written {
		return
	}
	w.written = true
	w.status = code
	if w.before != nil {
		w.before(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers (watch) flush through the wrapper.
func (w *statusWriter) Flush() {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func isMutating(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// wrap adds the middleware every route shares: request id, panic recovery,
// authentication, body limit, audit, metrics and logs.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(rt, w, r, nil) })
}

// serve runs rt's handler with the middleware wrap describes. vars are the
// path's variables when the router did not route r.
func (s *Server) serve(rt Route, w http.ResponseWriter, r *http.Request, vars *kvVars) {
	start := time.Now()
	id := r.Header.Get(wireRequestID)
	if !requestIDPattern.MatchString(id) {
		id = newRequestID()
	}
	info := &reqInfo{id: id, route: rt.Path, action: rt.Action, git: rt.Git, readOnly: rt.ReadOnly, vars: vars}
	if rt.unrouted {
		info.target = unroutedTarget(r)
	}
	r = r.WithContext(contextWith(r.Context(), info))
	w.Header().Set(wireRequestID, id)
	sw := &statusWriter{ResponseWriter: w}
	sw.before = func(status int) {
		if info.outcome != 0 {
			status = info.outcome
		}
		s.audit(r, info, status)
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "route", rt.Path, "panic", v, "stack", string(debug.Stack()))
			if !sw.written {
				s.writeError(sw, r, fmt.Errorf("panic: %v", v))
			}
		}
		d := time.Since(start)
		s.reqDuration.WithLabelValues(rt.Path, methodLabel(r.Method), strconv.Itoa(sw.status)).Observe(d.Seconds())
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("request", "method", r.Method, "route", rt.Path, "status", sw.status, "took", d, "request_id", id)
		}
	}()
	if r.Body != nil {
		limit := s.opts.MaxBodyBytes
		if rt.MaxBody > 0 {
			limit = rt.MaxBody
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
	}
	if rt.Git && s.opts.Auth != nil && r.Header.Get("Authorization") == "" {
		// The git client asks without credentials first, every time,
		// and sends them once challenged: that is no failed attempt
		// for the authenticator to count against the address, nor one
		// for the audit log. A blocked address gets its 429 all the same.
		info.quiet = true
		if err := s.blocked(r); err != nil {
			s.writeError(sw, r, err)
			return
		}
		s.writeError(sw, r, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized",
			"credentials required: the token as the password, or a bearer token"))
		return
	}
	// A mutating request that no route serves is authenticated too: its
	// 404 or 405 is audited with its caller, and without a valid token
	// it is refused, counted and audited as on any route.
	if !rt.Open || (rt.Action == "metrics" && s.opts.MetricsAuth) || (rt.unrouted && isMutating(r.Method)) {
		p, err := s.authenticate(r)
		if err != nil {
			refused(r, info, err)
			s.writeError(sw, r, err)
			return
		}
		info.principal = p
	}
	rt.handler(sw, r)
	if !sw.written {
		sw.WriteHeader(http.StatusOK)
	}
}

const wireRequestID = "X-Request-Id"

// maxUnroutedPath bounds the path an audit line names for a request no
// route serves.
const maxUnroutedPath = 256

// unroutedTarget is the audit target of a request no route serves (its
// route is empty): "path:" and its escaped path, cut to maxUnroutedPath
// bytes.
func unroutedTarget(r *http.Request) string {
	p := r.URL.EscapedPath()
	if len(p) > maxUnroutedPath {
		p = p[:maxUnroutedPath]
	}
	return "path:" + p
}

func (s *Server) authenticate(r *http.Request) (*Principal, error) {
	if s.opts.Auth == nil {
		return &Principal{Name: "anonymous", Scopes: []Scope{ScopeAdmin}, Repos: []string{"*"}}, nil
	}
	return s.opts.Auth.Authenticate(r)
}

// blocked returns the 429 of a client address that has used up its
// allowance of failed authentications (see FailureLimiter), or nil.
func (s *Server) blocked(r *http.Request) error {
	if s.opts.Failures == nil {
		return nil
	}
	return s.opts.Failures.Blocked(r)
}

// refused prepares the audit line of a request that authentication
// refused with err: the token, when the authenticator knew it, and the
// repo and keys the path names (the handler, which would have named them,
// does not run). A 429 about no token, that of a client address blocked
// for its failed authentications, is quiet (see reqInfo).
func refused(r *http.Request, info *reqInfo, err error) {
	var rt *RefusedToken
	if errors.As(err, &rt) {
		info.refused = &Principal{TokenID: rt.TokenID, Name: rt.Name}
	} else if gitstate.KindOf(err) == gitstate.KindTooManyRequests {
		info.quiet = true
		return
	}
	info.repo = pathVar(r, "repo")
	if pathVar(r, "key") == "" {
		return
	}
	// Each sets info.keys to the key as its handler names it, if valid.
	if strings.Contains(info.route, "/secrets/{key}") {
		_, _ = secretPathOf(r)
	} else {
		_, _ = keyOf(r)
	}
}

// methodLabel is a request's method as a metric label: one of the methods
// the API serves, else "OTHER", so that a client cannot add series at will
// (a request no route serves is measured too, and may come before its
// token is checked).
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// failed counts err against r's client address when it is a failed
// authentication.
func (s *Server) failed(r *http.Request, err error) {
	if s.opts.Failures != nil && gitstate.KindOf(err) == gitstate.KindUnauthorized {
		s.opts.Failures.Failed(r)
	}
}

// audit records mutating, denied and secret-reading requests, but for
// the quiet ones (see reqInfo).
func (s *Server) audit(r *http.Request, info *reqInfo, status int) {
	if s.opts.Auditor == nil {
		return
	}
	// A 429 about a token (its rate, its streams) is a denial too; that of
	// an address blocked before any token is looked at is quiet (below).
	denied := status == http.StatusUnauthorized || status == http.StatusForbidden ||
		(status == http.StatusTooManyRequests && (info.refused != nil || info.principal != nil))
	if (!isMutating(r.Method) || info.readOnly) && !denied && !info.secretRead {
		return
	}
	if info.noted && status == http.StatusOK {
		return
	}
	if info.quiet {
		return
	}
	var err error
	if la, ok := s.opts.Auditor.(LazyAuditor); ok && status == http.StatusTooManyRequests {
		err = la.RecordLazily(s.auditEvent(r, info, status))
	} else {
		err = s.opts.Auditor.Record(r.Context(), s.auditEvent(r, info, status))
	}
	if err != nil {
		s.log.Error("audit record failed", "err", err, "request_id", info.id)
	}
}

// auditEvent is the audit event of a request answered with status.
func (s *Server) auditEvent(r *http.Request, info *reqInfo, status int) AuditEvent {
	p := info.principal
	if p == nil {
		p = info.refused
	}
	return AuditEvent{
		Time:      time.Now(),
		RequestID: info.id,
		Principal: p,
		Remote:    r.RemoteAddr,
		Method:    r.Method,
		Route:     info.route,
		Action:    info.action,
		Repo:      info.repo,
		Keys:      info.keys,
		Target:    info.target,
		Status:    status,
		Revision:  info.revision,
	}
}

// noteWrite makes a direct write's batch carry the request's audit line
// (see LineAuditor), as it will read when the write succeeds: status 200
// at the batch's revision. Call noted with the result.
func (s *Server) noteWrite(r *http.Request, t *target, b *storage.Batch) {
	la, ok := s.opts.Auditor.(LineAuditor)
	info := infoOf(r)
	if !ok || info == nil || t.inTxn() {
		return
	}
	line, err := la.LineAt(s.auditEvent(r, info, http.StatusOK))
	if err != nil {
		return // recorded by the handler instead
	}
	b.Note = func(res *storage.Result) []byte {
		if !res.Changed {
			return line(0) // main stayed where it was: no revision made
		}
		return line(res.Revision)
	}
}

// noted records that res's batch carried the request's audit line.
func noted(r *http.Request, res *storage.Result) {
	if info := infoOf(r); info != nil && res != nil && res.Noted {
		info.noted = true
	}
}

// made records the revision of main res made for r's audit line. A write
// that changed nothing made none: its result's revision is main's, as it
// already was.
func made(r *http.Request, res *storage.Result) {
	if info := infoOf(r); info != nil && res != nil && res.Changed {
		info.revision = res.Revision
	}
}

// metricsHandler serves /metrics.
func (s *Server) metricsHandler() http.HandlerFunc {
	h := promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.MetricsAuth {
			if err := authorize(r, ScopeRead, ""); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		h.ServeHTTP(w, r)
	}
}
