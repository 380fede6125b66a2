// Package upstream keeps each repo in step with an upstream Git remote, in
// one of two modes:
//
//   - mirror: main is pushed to the upstream's branch after each commit
//     (and every Interval, which also notices an upstream that moved on its
//     own), fast-forward only, with retries and exponential backoff; the lag
//     (revisions not pushed yet, and for how long) is in the status and the
//     metrics. With PushTxns, the open transactions' branches go too.
//   - follow: the upstream's branch is fetched every Interval, or when its
//     webhook (HMAC-signed) arrives, and main is fast-forwarded to it
//     through storage.Advance: each first-parent commit becomes a revision,
//     with watch events, after the repo's checks (Options.Check).
//
// When both sides moved, the upstream has diverged: the status, the
// gitstate_upstream_diverged metric and a log event say so, and nothing is
// overwritten on either side; resolving it is a person's job.
//
// Credentials never reach Git's config, the command line or the logs:
// they go to the git CLI through its environment (storage.GitCommand), and
// rest sealed in the data directory (config.go).
package upstream

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// Options configures a Manager.
type Options struct {
	Store *storage.Store
	// DataDir holds upstreams/ and server.key.
	DataDir string
	Logger  *slog.Logger
	// Registerer, if set, receives the metrics.
	Registerer prometheus.Registerer
	// Check applies the repo's policy to what a followed commit changes
	// (schemas, secrets...): the same checks as a write (nil: none).
	Check func(ctx context.Context, repo string, ops []storage.Op) error
	// DefaultInterval is the Interval of an upstream that sets none (1m).
	DefaultInterval time.Duration
	// MinRetry and MaxRetry bound the backoff after a failure (1s, 5m).
	MinRetry, MaxRetry time.Duration
}

// Manager runs the upstreams of a store's repos. It implements
// api.Upstreams and is safe for concurrent use.
type Manager struct {
	opts   Options
	log    *slog.Logger
	store  *store
	syncs  *prometheus.CounterVec
	closed bool

	mu      sync.Mutex // guards links, started and closed; lock order: Manager.mu, then link.mu
	links   map[string]*link
	started bool
}

var _ api.Upstreams = (*Manager)(nil)

// Open loads the upstreams configured in opts.DataDir. Start starts
// keeping them in step (once what Options.Check uses is ready); Close stops
// them.
func Open(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DefaultInterval <= 0 {
		opts.DefaultInterval = time.Minute
	}
	if opts.MinRetry <= 0 {
		opts.MinRetry = time.Second
	}
	if opts.MaxRetry <= 0 {
		opts.MaxRetry = 5 * time.Minute
	}
	keys, made, err := loadKey(filepath.Join(opts.DataDir, KeyFile))
	if err != nil {
		return nil, err
	}
	if made {
		opts.Logger.Info("made the server key, which seals upstream credentials", "file", filepath.Join(opts.DataDir, KeyFile))
	}
	m := &Manager{opts: opts, log: opts.Logger, links: map[string]*link{},
		store: &store{dir: filepath.Join(opts.DataDir, "upstreams"), keys: keys}}
	m.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gitstate_upstream_syncs_total",
		Help: "Pushes (mirror) and fetches (follow) to and from upstreams, by result.",
	}, []string{"repo", "mode", "result"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.syncs, (*collector)(m))
	}
	cfgs, err := m.store.load()
	if err != nil {
		return nil, err
	}
	for repo, c := range cfgs {
		r, err := opts.Store.Repo(repo)
		if err != nil {
			m.log.Warn("upstream of a repo that does not exist; ignored", "repo", repo)
			continue
		}
		m.links[repo] = m.newLink(r, c)
	}
	return m, nil
}

// Start starts keeping every upstream in step; upstreams configured later
// start at once.
func (m *Manager) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	for _, l := range m.links {
		l.start()
	}
}

// Close stops every upstream and waits for attempts in flight.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	links := m.links
	m.links = map[string]*link{}
	m.mu.Unlock()
	for _, l := range links {
		l.stop()
	}
}

func notFound(repo string) error {
	return gitstate.Errorf(gitstate.KindNotFound, "upstream_not_found", "repo %s has no upstream", repo)
}

func (m *Manager) link(repo string) (*link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[repo]
	if !ok {
		return nil, notFound(repo)
	}
	return l, nil
}

// Get implements api.Upstreams.
func (m *Manager) Get(repo string) (*wire.Upstream, error) {
	l, err := m.link(repo)
	if err != nil {
		return nil, err
	}
	return l.describe(), nil
}

func invalid(format string, args ...any) error {
	return gitstate.Errorf(gitstate.KindInvalid, "invalid_request", format, args...)
}

// Set implements api.Upstreams.
func (m *Manager) Set(ctx context.Context, repo string, in wire.UpstreamConfig) (*wire.Upstream, error) {
	r, err := m.opts.Store.Repo(repo)
	if err != nil {
		return nil, err
	}
	if _, ok := r.Backend().(gitRepo); !ok {
		return nil, gitstate.Errorf(gitstate.KindUnavailable, "git_unavailable", "repo %s is not kept in a local Git repository", repo)
	}
	c := &config{Mode: in.Mode, Branch: in.Branch, Username: in.Username, PushTxns: in.PushTxns, Interval: time.Duration(in.Interval),
		secrets: secrets{Password: in.Password, Token: in.Token, WebhookSecret: in.WebhookSecret}}
	if c.Mode != wire.UpstreamMirror && c.Mode != wire.UpstreamFollow {
		return nil, invalid("mode must be %q or %q", wire.UpstreamMirror, wire.UpstreamFollow)
	}
	clean, header := storage.SplitCredentials(in.URL)
	if err := storage.ValidateSource(clean); err != nil {
		return nil, err
	}
	if err := refuseQuery(clean); err != nil {
		return nil, err
	}
	c.URL = clean
	if header != "" {
		// The URL carried a user and password: keep them as credentials.
		if c.Password != "" || c.Token != "" {
			return nil, invalid("give the credentials in the URL or in the fields, not both")
		}
		u, pw := urlUser(in.URL)
		c.Username, c.Password = u, pw
	}
	if c.Token != "" && c.Password != "" {
		return nil, invalid("give a password or a token, not both")
	}
	if c.Branch == "" {
		c.Branch = storage.MainBranch
	}
	if err := storage.ValidateBranch(c.Branch); err != nil {
		return nil, err
	}
	if c.Interval == 0 {
		c.Interval = m.opts.DefaultInterval
	}
	if c.Interval < time.Second {
		return nil, invalid("interval must be 1s or more")
	}
	if c.PushTxns && c.Mode != wire.UpstreamMirror {
		return nil, invalid("push_txns is for mirrors")
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindUnavailable, "unavailable", "the server is shutting down")
	}
	old := m.links[repo]
	if old != nil && old.cfg.URL == c.URL {
		// Secrets left out are kept, so that changing the interval does
		// not mean sending the password again.
		if c.Password == "" && c.Token == "" && (c.Username == "" || c.Username == old.cfg.Username) {
			c.Username, c.Password, c.Token = old.cfg.Username, old.cfg.Password, old.cfg.Token
		}
		if c.WebhookSecret == "" {
			c.WebhookSecret = old.cfg.WebhookSecret
		}
	}
	if err := m.store.save(repo, c); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	delete(m.links, repo)
	m.mu.Unlock()
	if old != nil {
		old.stop()
	}
	l := m.newLink(r, c)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindUnavailable, "unavailable", "the server is shutting down")
	}
	m.links[repo] = l
	if m.started {
		l.start()
	}
	m.mu.Unlock()
	m.log.Info("upstream configured", "repo", repo, "mode", c.Mode, "url", storage.RedactURL(c.URL), "branch", c.Branch, "interval", c.Interval)
	return l.describe(), nil
}

// refuseQuery refuses an http(s) URL with a query string or a fragment. The
// URL is stored in the clear and shown by the API and in the logs, so a
// credential in its query (GitLab's ?private_token=...) would leak; the
// password and token fields are kept as secrets and sent in a header. The
// message does not quote the URL, lest it carry the credential on.
func refuseQuery(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil
	}
	if u.RawQuery != "" || u.ForceQuery {
		return invalid("url must not have a query string: it is stored and shown as it is; give a credential in token or password (or as user:password@ in the URL), which are kept secret")
	}
	if u.Fragment != "" {
		return invalid("url must not have a fragment")
	}
	return nil
}

// urlUser returns the user and password of a URL.
func urlUser(raw string) (string, string) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return "", ""
	}
	pw, _ := u.User.Password()
	return u.User.Username(), pw
}

// Delete implements api.Upstreams.
func (m *Manager) Delete(ctx context.Context, repo string) error {
	m.mu.Lock()
	l, ok := m.links[repo]
	if !ok {
		m.mu.Unlock()
		return notFound(repo)
	}
	if err := m.store.remove(repo); err != nil {
		m.mu.Unlock()
		return err
	}
	delete(m.links, repo)
	m.mu.Unlock()
	l.stop()
	m.log.Info("upstream removed", "repo", repo)
	return nil
}

// Sync implements api.Upstreams: it asks for an attempt now and waits for
// it (or ctx).
func (m *Manager) Sync(ctx context.Context, repo string) (*wire.Upstream, error) {
	l, err := m.link(repo)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	select {
	case l.kick <- done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.done:
		return nil, notFound(repo)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.done:
	}
	return l.describe(), nil
}

// Webhook implements api.Upstreams: a correctly signed request starts an
// attempt (without waiting for it).
func (m *Manager) Webhook(ctx context.Context, repo string, body []byte, h http.Header) error {
	l, err := m.link(repo)
	if err != nil || l.cfg.WebhookSecret == "" {
		return gitstate.Errorf(gitstate.KindNotFound, "upstream_not_found", "repo %s has no upstream with a webhook", repo)
	}
	if !verifySignature(l.cfg.WebhookSecret, body, h) {
		m.log.Warn("upstream webhook with a bad signature", "repo", repo)
		return gitstate.Errorf(gitstate.KindUnauthorized, "bad_signature", "the webhook's signature is missing or wrong")
	}
	select {
	case l.kick <- nil:
	default: // an attempt is already due
	}
	return nil
}

// verifySignature checks a webhook: HMAC-SHA256 of the body with secret,
// as GitHub, Forgejo (X-Hub-Signature-256: sha256=<hex>), Gitea and Gogs
// (X-Gitea-Signature: <hex>) or gitstate (X-Gitstate-Signature) send it, or
// the secret itself as GitLab sends it (X-Gitlab-Token).
func verifySignature(secret string, body []byte, h http.Header) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := mac.Sum(nil)
	check := func(v string) bool {
		got, err := hex.DecodeString(strings.TrimSpace(v))
		return err == nil && hmac.Equal(got, want)
	}
	for _, name := range []string{"X-Hub-Signature-256", "X-Gitstate-Signature"} {
		if v, ok := strings.CutPrefix(h.Get(name), "sha256="); ok && check(v) {
			return true
		}
	}
	for _, name := range []string{"X-Gitea-Signature", "X-Gogs-Signature"} {
		if v := h.Get(name); v != "" && check(v) {
			return true
		}
	}
	if v := h.Get("X-Gitlab-Token"); v != "" {
		return subtle.ConstantTimeCompare([]byte(v), []byte(secret)) == 1
	}
	return false
}

// Sign returns the X-Gitstate-Signature of a webhook body (for senders and
// tests).
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// link keeps one repo in step with its upstream: one goroutine, attempts
// one at a time.
type link struct {
	m    *Manager
	repo *storage.Repo
	gr   gitRepo
	cfg  *config // never changes: Set replaces the link
	kick chan chan struct{}
	stop func() // cancels the goroutine, if started, and waits for it
	// startFn starts the goroutine (once); done is closed when it ends, or
	// when the link stops unstarted.
	startFn func()
	done    chan struct{}

	mu sync.Mutex // guards st
	st linkState
}

// linkState is what a link knows of the upstream.
type linkState struct {
	state    string
	message  string
	diverged bool
	theirs   storage.Hash // the upstream's head, as last seen
	synced   storage.Hash // a commit of main the upstream holds
	// behindSince is when the mirror first found main with revisions
	// the upstream lacks: when they were committed, or when the link was
	// made (configured, or the server started) if main had them then.
	behindSince time.Time
	failures    int
	lastSync    time.Time
	lastAttempt time.Time
	nextAttempt time.Time
}

const (
	statePending  = "pending"
	stateInSync   = "in_sync"
	stateBehind   = "behind"
	stateRetrying = "retrying"
	stateRefused  = "refused"
	stateAhead    = "ahead"
	stateDiverged = "diverged"
)

// newLink returns the link of a repo's upstream, not started.
func (m *Manager) newLink(r *storage.Repo, c *config) *link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{m: m, repo: r, gr: r.Backend().(gitRepo), cfg: c, kick: make(chan chan struct{}, 16), done: make(chan struct{}),
		st: linkState{state: statePending}}
	if c.Mode == wire.UpstreamMirror {
		// Until an attempt shows otherwise, the upstream lacks all of
		// main: its lag counts from now (the configuration, or the
		// server's start), not from the next commit.
		l.noteHead()
	}
	var once sync.Once
	l.stop = func() {
		cancel()
		once.Do(func() { close(l.done) }) // never started: nothing to wait for
		<-l.done
	}
	l.startFn = func() {
		once.Do(func() {
			go func() {
				defer close(l.done)
				l.run(ctx)
			}()
		})
	}
	return l
}

// start starts the link's goroutine (once).
func (l *link) start() { l.startFn() }

func (l *link) env() storage.GitEnv {
	return storage.GitEnv{Dir: l.gr.Dir(), Header: l.cfg.header(), Config: []string{"http.followRedirects=false", "safe.directory=*"}}
}

// run is the link's goroutine: an attempt at once, then on each new commit
// (mirror), each kick, each interval, and each retry after a failure.
func (l *link) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var waiters []chan struct{}
	defer func() {
		for _, w := range waiters {
			close(w)
		}
	}()
	// The channel of the next change is always taken before the head is
	// read (by noteHead or an attempt), so that no commit goes unseen.
	changed := l.repo.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case w := <-l.kick:
			if w != nil {
				waiters = append(waiters, w)
			}
		case <-changed:
			changed = l.repo.Changed()
			if l.cfg.Mode != wire.UpstreamMirror {
				continue
			}
			l.noteHead()
			l.mu.Lock()
			backoff := l.st.failures > 0 && time.Now().Before(l.st.nextAttempt)
			idle := l.repo.Head().Commit == l.st.synced && l.st.state == stateInSync && !l.cfg.PushTxns
			l.mu.Unlock()
			if backoff || idle {
				// A retry is set; or a ref other than main moved (a
				// transaction's record) and the upstream has main.
				continue
			}
		}
		// Take every kick that came meanwhile: one attempt answers them all.
	drain:
		for {
			select {
			case w := <-l.kick:
				if w != nil {
					waiters = append(waiters, w)
				}
			default:
				break drain
			}
		}
		changed = l.repo.Changed()
		next := l.attempt(ctx)
		for _, w := range waiters {
			close(w)
		}
		waiters = nil
		timer.Reset(next)
	}
}

// noteHead records when main got ahead of what the upstream holds.
func (l *link) noteHead() {
	head := l.repo.Head()
	l.mu.Lock()
	defer l.mu.Unlock()
	if head.Commit != l.st.synced && l.st.behindSince.IsZero() {
		l.st.behindSince = time.Now()
	}
}

// attempt runs one push or fetch and returns when the next is due.
func (l *link) attempt(ctx context.Context) time.Duration {
	now := time.Now()
	var r result
	if l.cfg.Mode == wire.UpstreamMirror {
		r = l.push(ctx)
	} else {
		r = l.follow(ctx)
	}
	if ctx.Err() != nil {
		return time.Hour
	}
	l.m.syncs.WithLabelValues(l.repo.Name(), l.cfg.Mode, r.kind).Inc()
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := l.st.state
	l.st.lastAttempt = now
	l.st.message = r.message
	if !r.theirs.IsZero() {
		l.st.theirs = r.theirs
	}
	var next time.Duration
	switch r.kind {
	case "ok":
		l.st.failures, l.st.diverged, l.st.lastSync = 0, false, time.Now()
		l.st.synced = r.synced
		l.st.state = stateInSync
		if r.ahead {
			l.st.state = stateAhead
		}
		if l.repo.Head().Commit == r.synced {
			l.st.behindSince = time.Time{}
		}
		next = l.cfg.Interval
	case "diverged":
		l.st.failures, l.st.diverged = 0, true
		l.st.state = stateDiverged
		next = l.cfg.Interval
	case "refused":
		l.st.failures++
		l.st.diverged = false
		l.st.state = stateRefused
		next = l.cfg.Interval
	default: // "error"
		l.st.failures++
		l.st.state = stateRetrying
		next = l.backoff(l.st.failures)
	}
	l.st.nextAttempt = time.Now().Add(next)
	log := l.m.log.With("repo", l.repo.Name(), "mode", l.cfg.Mode, "url", storage.RedactURL(l.cfg.URL))
	switch {
	case r.kind == "diverged" && prev != stateDiverged:
		log.Warn("upstream diverged: both sides moved; resolve by hand", "event", "upstream_diverged",
			"ours", l.repo.Head().Commit.String(), "theirs", l.st.theirs.String(), "reason", r.message)
	case r.kind == "refused" && prev != stateRefused:
		log.Warn("upstream commits refused", "event", "upstream_refused", "reason", r.message)
	case r.kind == "error":
		log.Warn("upstream attempt failed; will retry", "err", r.message, "failures", l.st.failures, "retry_in", next.Round(time.Millisecond))
	case r.kind == "ok" && prev != l.st.state:
		log.Info("upstream in step", "state", l.st.state, "revision", l.revisionOf(r.synced))
	}
	return next
}

func (l *link) backoff(failures int) time.Duration {
	d := l.m.opts.MinRetry << min(failures-1, 20)
	if d > l.m.opts.MaxRetry || d <= 0 {
		d = l.m.opts.MaxRetry
	}
	// Up to 20% of jitter, so that many mirrors of one failed upstream
	// do not retry in step.
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

func (l *link) revisionOf(h storage.Hash) int64 {
	if h.IsZero() {
		return 0
	}
	rev, _ := l.repo.RevisionOf(h)
	return rev
}

// result is the outcome of an attempt. kind is "ok", "error" (retried with
// backoff), "diverged" or "refused" (rechecked every interval).
type result struct {
	kind    string
	message string
	theirs  storage.Hash
	synced  storage.Hash
	ahead   bool
}

func failed(format string, args ...any) result {
	return result{kind: "error", message: fmt.Sprintf(format, args...)}
}

// push pushes main (and the transactions' branches) to the upstream.
func (l *link) push(ctx context.Context) result {
	if err := l.gr.Flush(); err != nil {
		return failed("flush: %v", err)
	}
	head := l.repo.Head()
	dst := "refs/heads/" + l.cfg.Branch
	env := l.env()
	var refspecs []string
	if !head.Commit.IsZero() {
		refspecs = append(refspecs, head.Commit.String()+":"+dst)
	}
	var txns map[string]storage.Hash
	if l.cfg.PushTxns {
		txns = l.repo.Backend().Refs("refs/heads/txn/")
		remote, err := remoteRefs(ctx, env, l.cfg.URL, "refs/heads/txn/*")
		if err != nil {
			return failed("list the upstream's transaction branches: %v", err)
		}
		for name, h := range txns {
			if remote[name] != h {
				refspecs = append(refspecs, "+"+h.String()+":"+name)
			}
		}
		for name := range remote {
			if _, ok := txns[name]; !ok {
				refspecs = append(refspecs, ":"+name)
			}
		}
	}
	if len(refspecs) == 0 {
		return result{kind: "ok"}
	}
	out, err := runGit(ctx, env, nil, append([]string{"push", "--porcelain", "--no-verify", "--", l.cfg.URL}, refspecs...)...)
	lines := parsePorcelain(out)
	mainLine, ok := lines[dst]
	if err != nil && !ok {
		return failed("push: %v", err)
	}
	if ok && mainLine.flag == '!' {
		if strings.Contains(mainLine.summary, "remote rejected") {
			return failed("the upstream refused the push: %s", mainLine.summary)
		}
		// Rejected by the client: the upstream's branch is not an
		// ancestor of main (someone pushed there).
		theirs := storage.ZeroHash
		if refs, err := remoteRefs(ctx, env, l.cfg.URL, dst); err == nil {
			theirs = refs[dst]
		}
		return result{kind: "diverged", theirs: theirs, message: fmt.Sprintf(
			"the upstream's %s (%s) has commits main does not: pushing would overwrite them (%s); reconcile the two by hand",
			l.cfg.Branch, short(theirs), mainLine.summary)}
	}
	r := result{kind: "ok", synced: head.Commit, theirs: head.Commit}
	for name := range txns {
		if ln, ok := lines[name]; ok && ln.flag == '!' {
			r.message = fmt.Sprintf("transaction branch %s: %s", strings.TrimPrefix(name, "refs/heads/"), ln.summary)
		}
	}
	return r
}

// follow fetches the upstream's branch and fast-forwards main to it.
func (l *link) follow(ctx context.Context) result {
	if err := l.gr.Flush(); err != nil {
		return failed("flush: %v", err)
	}
	q, err := newQuarantine(ctx, l.gr.Dir())
	if err != nil {
		return failed("%v", err)
	}
	defer q.remove()
	theirs, err := q.fetch(ctx, l.env(), l.cfg.URL, l.cfg.Branch)
	if err != nil {
		return failed("fetch: %v", err)
	}
	ours := l.repo.Head().Commit
	if theirs == ours {
		return result{kind: "ok", synced: ours, theirs: theirs}
	}
	if !ours.IsZero() {
		ff, err := q.isAncestor(ctx, ours, theirs)
		if err != nil {
			return failed("compare histories: %v", err)
		}
		if !ff {
			behind, err := q.isAncestor(ctx, theirs, ours)
			if err != nil {
				return failed("compare histories: %v", err)
			}
			if behind {
				return result{kind: "ok", ahead: true, synced: theirs, theirs: theirs,
					message: fmt.Sprintf("main has revisions the upstream's %s lacks (written here, not upstream)", l.cfg.Branch)}
			}
			return result{kind: "diverged", theirs: theirs, message: fmt.Sprintf(
				"main (%s) and the upstream's %s (%s) have both moved since they last agreed; reconcile the two by hand",
				short(ours), l.cfg.Branch, short(theirs))}
		}
	}
	objs, err := q.objects(ctx, l.repo.Backend(), ours, theirs)
	if err != nil {
		return failed("%v", err)
	}
	ref := storage.BranchRef(storage.MainBranch)
	adv, err := l.repo.PrepareAdvance(ctx, ref, ours, theirs, objs, storage.AdvanceOptions{AllowSpecial: true})
	if err == nil && l.m.opts.Check != nil {
		for _, c := range adv.Line {
			var ops []storage.Op
			if ops, err = adv.Ops(c); err != nil {
				break
			}
			if err = l.m.opts.Check(ctx, l.repo.Name(), ops); err != nil {
				err = storage.InCommit(c.Hash, err)
				break
			}
		}
	}
	var res *storage.Result
	if err == nil {
		res, err = l.repo.WriteOne(ctx, &storage.Batch{Ref: ref, Advance: adv})
	}
	if err != nil {
		var ge *gitstate.Error
		switch {
		case errors.As(err, &ge) && ge.Code == "non_fast_forward" && l.repo.Head().Commit != ours:
			return failed("main moved while following the upstream: %s", ge.Message)
		case errors.As(err, &ge) && ge.Code == "non_fast_forward":
			return result{kind: "diverged", theirs: theirs, message: ge.Message}
		case errors.As(err, &ge) && ge.Kind != gitstate.KindInternal && ge.Kind != gitstate.KindUnavailable:
			return result{kind: "refused", theirs: theirs, message: ge.Code + ": " + ge.Message}
		}
		return failed("advance main: %v", err)
	}
	l.m.log.Info("followed the upstream", "repo", l.repo.Name(), "url", storage.RedactURL(l.cfg.URL), "revisions", len(adv.Line), "revision", res.Revision, "commit", theirs.String())
	return result{kind: "ok", synced: theirs, theirs: theirs}
}

func short(h storage.Hash) string {
	if h.IsZero() {
		return "nothing"
	}
	return h.String()[:12]
}

// describe returns the link's configuration and state.
func (l *link) describe() *wire.Upstream {
	head := l.repo.Head()
	l.mu.Lock()
	st := l.st
	l.mu.Unlock()
	up := l.cfg.wire(l.repo.Name())
	ws := wire.UpstreamStatus{State: st.state, Diverged: st.diverged, Message: st.message, Failures: st.failures}
	if !head.Commit.IsZero() {
		ws.Ours = head.Commit.String()
	}
	if !st.theirs.IsZero() {
		ws.Theirs = st.theirs.String()
	}
	ws.Revision = l.revisionOf(st.synced)
	if l.cfg.Mode == wire.UpstreamMirror {
		ws.LagRevisions, ws.LagSeconds = l.lag(head, st)
		if ws.LagRevisions > 0 && st.state == stateInSync {
			ws.State = stateBehind
		}
	} else if st.state == stateInSync && head.Commit != st.synced {
		ws.State = stateAhead
		ws.Message = "main has revisions written here since the last fetch, which the upstream lacks"
	}
	for _, t := range []struct {
		at  time.Time
		dst **time.Time
	}{{st.lastSync, &ws.LastSync}, {st.lastAttempt, &ws.LastAttempt}, {st.nextAttempt, &ws.NextAttempt}} {
		if !t.at.IsZero() {
			at := t.at.UTC()
			*t.dst = &at
		}
	}
	up.Status = ws
	return &up
}

// lag returns how many revisions of main a mirror's upstream lacks, and
// for how long it has lacked them.
func (l *link) lag(head storage.Head, st linkState) (int64, float64) {
	if head.Commit == st.synced {
		return 0, 0
	}
	n := head.Revision - l.revisionOf(st.synced)
	var secs float64
	if !st.behindSince.IsZero() {
		secs = time.Since(st.behindSince).Seconds()
	}
	return n, secs
}

// collector reports each upstream's lag and divergence at scrape time.
type collector Manager

var (
	lagRevisionsDesc = prometheus.NewDesc("gitstate_upstream_lag_revisions",
		"Revisions of main a mirror's upstream lacks.", []string{"repo", "mode"}, nil)
	lagSecondsDesc = prometheus.NewDesc("gitstate_upstream_lag_seconds",
		"How long a mirror's upstream has lacked revisions of main.", []string{"repo", "mode"}, nil)
	divergedDesc = prometheus.NewDesc("gitstate_upstream_diverged",
		"1 when main and its upstream have both moved (to resolve by hand).", []string{"repo", "mode"}, nil)
	failuresDesc = prometheus.NewDesc("gitstate_upstream_failures",
		"Attempts to reach an upstream failed in a row.", []string{"repo", "mode"}, nil)
	lastSyncDesc = prometheus.NewDesc("gitstate_upstream_last_sync_timestamp_seconds",
		"When a repo and its upstream last agreed.", []string{"repo", "mode"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lagRevisionsDesc, lagSecondsDesc, divergedDesc, failuresDesc, lastSyncDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := (*Manager)(c)
	m.mu.Lock()
	links := make([]*link, 0, len(m.links))
	for _, l := range m.links {
		links = append(links, l)
	}
	m.mu.Unlock()
	for _, l := range links {
		up := l.describe()
		labels := []string{up.Repo, up.Mode}
		div := 0.0
		if up.Status.Diverged {
			div = 1
		}
		ch <- prometheus.MustNewConstMetric(lagRevisionsDesc, prometheus.GaugeValue, float64(up.Status.LagRevisions), labels...)
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, up.Status.LagSeconds, labels...)
		ch <- prometheus.MustNewConstMetric(divergedDesc, prometheus.GaugeValue, div, labels...)
		ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.GaugeValue, float64(up.Status.Failures), labels...)
		if up.Status.LastSync != nil {
			ch <- prometheus.MustNewConstMetric(lastSyncDesc, prometheus.GaugeValue, float64(up.Status.LastSync.Unix()), labels...)
		}
	}
}
