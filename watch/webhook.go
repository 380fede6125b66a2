package watch

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
)

// EventRevision is the one event webhooks deliver: a revision of main.
const EventRevision = "revision"

// ErrWebhookNotFound is returned for an unknown webhook.
var ErrWebhookNotFound = &gitstate.Error{Kind: gitstate.KindNotFound, Code: "webhook_not_found"}

// WebhookOptions configures Webhooks. Zero values give the defaults.
type WebhookOptions struct {
	// Dir holds a file per repo with its webhooks and their positions, and
	// the key that seals their secrets (the server uses <data>/webhooks).
	Dir string
	// AttemptTimeout bounds one delivery attempt, response included
	// (default 10s).
	AttemptTimeout time.Duration
	// MinBackoff is the wait after a first failed attempt (default 1s).
	// Each further failure doubles it, up to MaxBackoff (default 5m); each
	// wait is jittered to between half and all of it.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Client sends the deliveries (default: a client that follows no
	// redirect, so that a 3xx is a failed attempt).
	Client *http.Client
	// MaxPerRepo bounds the webhooks of one repo (default 100).
	MaxPerRepo int
	// History is how many recent attempts each webhook keeps in memory
	// for GET .../deliveries (default 100).
	History int
	Logger  *slog.Logger
	// Registerer, if set, receives the delivery metrics.
	Registerer prometheus.Registerer
}

func (o *WebhookOptions) setDefaults() {
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.MaxPerRepo <= 0 {
		o.MaxPerRepo = 100
	}
	if o.History <= 0 {
		o.History = 100
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// WebhookConfig is what a webhook's creator says of it.
type WebhookConfig struct {
	// URL receives the deliveries: an absolute http or https URL without
	// user information.
	URL string
	// Prefix keeps the changes under it (empty: all).
	Prefix string
	// Secret keys each delivery's signature (16 to 1,024 bytes).
	Secret []byte
	// Events the webhook receives (default and only: EventRevision).
	Events []string
	// From is the revision after which deliveries start; a negative From
	// starts at the head (the next revision is the first delivered).
	From int64
}

// WebhookInfo describes a webhook and its progress; never its secret.
type WebhookInfo struct {
	ID        string
	Repo      string
	URL       string
	Prefix    string
	Events    []string
	CreatedAt time.Time
	// Position is the last revision delivered or passed over.
	Position int64
	// Pending is how many revisions of main follow Position.
	Pending int64
	// Failures counts the failed attempts since the last success.
	Failures     int
	LastDelivery *Delivery
}

// Delivery is one attempt to deliver a revision.
type Delivery struct {
	// ID is the delivery id, the same for every attempt of a revision.
	ID         string
	Revision   int64
	Attempt    int
	Time       time.Time
	StatusCode int // 0 when there was no response
	Err        string
	Duration   time.Duration
}

// OK reports whether the receiver accepted the delivery (a 2xx).
func (d *Delivery) OK() bool { return d.StatusCode >= 200 && d.StatusCode < 300 }

// Webhooks delivers the revisions of main to HTTP endpoints, signed, at
// least once and in revision order per webhook, each webhook from its own
// goroutine. Each webhook's position (the last revision delivered) is
// written to disk after every delivery, so a restart resumes after it and
// skips nothing; a crash between a delivery and that write delivers the
// revision again, with the same delivery id.
//
// On disk, in Dir: <repo>.json per repo (configs, positions and sealed
// secrets, replaced atomically) and key (the AES-256-GCM key of the
// secrets, mode 0600).
//
// Webhooks is safe for concurrent use. Lock order: repoHooks.saveMu, then
// Webhooks.mu, then hook.mu.
type Webhooks struct {
	store *storage.Store
	hub   *Hub
	opts  WebhookOptions
	seal  *sealer
	log   *slog.Logger
	mx    *webhookMetrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards repos, every repoHooks.hooks, hook.stop, started, closed
	repos   map[string]*repoHooks
	started bool
	closed  bool
}

// repoHooks is the webhooks of one repo: one file.
type repoHooks struct {
	name   string
	path   string
	saveMu sync.Mutex       // serializes writes of the file
	hooks  map[string]*hook // guarded by Webhooks.mu
}

// hook is one webhook.
type hook struct {
	id, repo  string
	url       string
	prefix    string
	events    []string
	createdAt time.Time
	secret    []byte // in memory only
	sealed    string // as stored
	rh        *repoHooks

	// stop ends the webhook's goroutine and waits for it (guarded by
	// Webhooks.mu; nil until it runs).
	stop func()

	mu       sync.Mutex // guards the fields below
	position int64
	failures int
	history  []Delivery // oldest first, at most opts.History
}

// hookRecord is a webhook as its repo's file keeps it.
type hookRecord struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Prefix    string    `json:"prefix,omitempty"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
	// Secret is sealed (see sealer), never plaintext.
	Secret   string `json:"sealed_secret"`
	Position int64  `json:"position"`
}

type hooksFile struct {
	Version  int          `json:"version"`
	Webhooks []hookRecord `json:"webhooks"`
}

// NewWebhooks loads the webhooks in opts.Dir (creating it and its key on
// first use). Deliveries begin with Start.
func NewWebhooks(store *storage.Store, hub *Hub, opts WebhookOptions) (*Webhooks, error) {
	opts.setDefaults()
	if opts.Dir == "" {
		return nil, errors.New("webhooks: no directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(opts.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	files = slices.DeleteFunc(files, func(p string) bool { return storage.ValidateRepoName(repoOfFile(p)) != nil })
	ctx, cancel := context.WithCancel(context.Background())
	w := &Webhooks{store: store, hub: hub, opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel, repos: map[string]*repoHooks{}}
	var recs map[string][]hookRecord
	if recs, err = readHookFiles(files); err != nil {
		return nil, err
	}
	if w.seal, err = openSealer(opts.Dir, len(recs) == 0); err != nil {
		return nil, err
	}
	for repo, rs := range recs {
		rh := w.repoHooksLocked(repo)
		for _, rec := range rs {
			secret, err := w.seal.open(rec.Secret, repo+"/"+rec.ID)
			if err != nil {
				return nil, fmt.Errorf("webhook %s of repo %s: %w", rec.ID, repo, err)
			}
			rh.hooks[rec.ID] = &hook{id: rec.ID, repo: repo, url: rec.URL, prefix: rec.Prefix, events: rec.Events,
				createdAt: rec.CreatedAt, secret: secret, sealed: rec.Secret, rh: rh, position: rec.Position}
		}
	}
	w.mx = newWebhookMetrics(w, opts.Registerer)
	return w, nil
}

func repoOfFile(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".json")
}

// readHookFiles reads the webhook files that hold webhooks, by repo.
func readHookFiles(paths []string) (map[string][]hookRecord, error) {
	out := map[string][]hookRecord{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("webhooks: %w", err)
		}
		var f hooksFile
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("webhooks: %s: %w", p, err)
		}
		if f.Version != 1 {
			return nil, fmt.Errorf("webhooks: %s: version %d, want 1", p, f.Version)
		}
		if len(f.Webhooks) > 0 {
			out[repoOfFile(p)] = f.Webhooks
		}
	}
	return out, nil
}

// repoHooksLocked returns the webhooks of repo, making an empty set on
// first use.
func (w *Webhooks) repoHooksLocked(repo string) *repoHooks {
	rh, ok := w.repos[repo]
	if !ok {
		rh = &repoHooks{name: repo, path: filepath.Join(w.opts.Dir, repo+".json"), hooks: map[string]*hook{}}
		w.repos[repo] = rh
	}
	return rh
}

// Start starts delivering: one goroutine per webhook, now and for each
// webhook created later, until Close.
func (w *Webhooks) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return
	}
	w.started = true
	for _, rh := range w.repos {
		for _, h := range rh.hooks {
			w.runLocked(h)
		}
	}
}

// runLocked starts h's goroutine.
func (w *Webhooks) runLocked(h *hook) {
	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan struct{})
	h.stop = func() {
		cancel()
		<-done
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(done)
		w.run(ctx, h)
	}()
}

// Close stops every delivery (an attempt in flight is abandoned, and made
// again after the next start) and writes the webhooks' positions.
func (w *Webhooks) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	// Write the positions of revisions passed over since the last save.
	w.mu.Lock()
	repos := make([]*repoHooks, 0, len(w.repos))
	for _, rh := range w.repos {
		repos = append(repos, rh)
	}
	w.mu.Unlock()
	var errs []error
	for _, rh := range repos {
		errs = append(errs, w.save(rh))
	}
	return errors.Join(errs...)
}

// save writes the file of rh's repo.
func (w *Webhooks) save(rh *repoHooks) error {
	rh.saveMu.Lock()
	defer rh.saveMu.Unlock()
	w.mu.Lock()
	recs := make([]hookRecord, 0, len(rh.hooks))
	for _, h := range rh.hooks {
		recs = append(recs, h.record())
	}
	w.mu.Unlock()
	slices.SortFunc(recs, func(a, b hookRecord) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	// A repo without webhooks keeps an empty file: removing it would not be
	// durable without a sync of the directory, and a deleted webhook must
	// not come back.
	b, err := json.MarshalIndent(hooksFile{Version: 1, Webhooks: recs}, "", "  ")
	if err != nil {
		return err
	}
	if err := storage.WriteFileAtomic(rh.path, b, 0o600); err != nil {
		return fmt.Errorf("write webhooks of repo %s: %w", rh.name, err)
	}
	return nil
}

func (h *hook) record() hookRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return hookRecord{ID: h.id, URL: h.url, Prefix: h.prefix, Events: h.events, CreatedAt: h.createdAt, Secret: h.sealed, Position: h.position}
}

// Create adds a webhook to repo and starts delivering to it (once Start
// has been called). It returns the webhook as written to disk.
func (w *Webhooks) Create(ctx context.Context, repo string, cfg WebhookConfig) (*WebhookInfo, error) {
	if err := validateWebhook(&cfg); err != nil {
		return nil, err
	}
	r, err := w.store.Repo(repo)
	if err != nil {
		return nil, err
	}
	head := r.Head().Revision
	if cfg.From > head {
		return nil, gitstate.Errorf(gitstate.KindNotFound, "revision_not_found", "revision %d does not exist", cfg.From)
	}
	if cfg.From < 0 {
		cfg.From = head
	}
	h := &hook{id: newWebhookID(), repo: repo, url: cfg.URL, prefix: cfg.Prefix, events: cfg.Events,
		createdAt: time.Now().UTC().Round(time.Millisecond), secret: slices.Clone(cfg.Secret), position: cfg.From}
	h.sealed = w.seal.seal(h.secret, repo+"/"+h.id)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindUnavailable, "unavailable", "the server is shutting down")
	}
	rh := w.repoHooksLocked(repo)
	if len(rh.hooks) >= w.opts.MaxPerRepo {
		w.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindConflict, "too_many_webhooks", "repo %s has %d webhooks, the most it may have", repo, len(rh.hooks))
	}
	h.rh = rh
	rh.hooks[h.id] = h
	w.mu.Unlock()
	if err := w.save(rh); err != nil {
		w.mu.Lock()
		delete(rh.hooks, h.id)
		w.mu.Unlock()
		return nil, err
	}
	// The answer describes the webhook as created, before its delivery
	// starts moving its position.
	info := h.info(head)
	w.mu.Lock()
	if w.started && !w.closed {
		w.runLocked(h)
	}
	w.mu.Unlock()
	w.log.Info("webhook created", "repo", repo, "webhook", h.id, "host", hostOf(h.url), "prefix", h.prefix, "position", info.Position)
	return &info, nil
}

// validateWebhook checks cfg and fills in its defaults.
func validateWebhook(cfg *WebhookConfig) error {
	invalid := func(format string, args ...any) error {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_request", format, args...)
	}
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return invalid("url is required")
	case len(cfg.URL) > 2048:
		return invalid("url is over 2048 bytes")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return invalid("url must be an absolute http or https URL")
	case u.User != nil:
		return invalid("url must not carry credentials: each delivery is signed with the secret")
	case u.Fragment != "":
		return invalid("url must not have a fragment")
	}
	if err := storage.ValidatePrefix(cfg.Prefix); err != nil {
		return err
	}
	if n := len(cfg.Secret); n < 16 || n > 1024 {
		return invalid("secret must be 16 to 1024 bytes")
	}
	if len(cfg.Events) == 0 {
		cfg.Events = []string{EventRevision}
	}
	for _, e := range cfg.Events {
		if e != EventRevision {
			return invalid("unknown event %q (webhooks deliver %q)", e, EventRevision)
		}
	}
	cfg.Events = slices.Compact(slices.Clone(cfg.Events))
	return nil
}

// hostOf returns the host of a webhook URL, for logs: a URL's path or
// query may carry a token.
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

func newWebhookID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [12]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b[:])
}

// ValidWebhookID reports whether id can be a webhook id.
func ValidWebhookID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// lookup returns a webhook of repo.
func (w *Webhooks) lookup(repo, id string) (*hook, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if rh, ok := w.repos[repo]; ok {
		if h, ok := rh.hooks[id]; ok {
			return h, nil
		}
	}
	return nil, gitstate.Errorf(gitstate.KindNotFound, "webhook_not_found", "webhook %q does not exist in repo %s", id, repo)
}

func (w *Webhooks) head(repo string) int64 {
	if r, err := w.store.Repo(repo); err == nil {
		return r.Head().Revision
	}
	return 0
}

// List returns the webhooks of repo, oldest first.
func (w *Webhooks) List(repo string) []WebhookInfo {
	head := w.head(repo)
	w.mu.Lock()
	var hs []*hook
	if rh, ok := w.repos[repo]; ok {
		for _, h := range rh.hooks {
			hs = append(hs, h)
		}
	}
	w.mu.Unlock()
	out := make([]WebhookInfo, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.info(head))
	}
	slices.SortFunc(out, func(a, b WebhookInfo) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

// Get returns a webhook of repo.
func (w *Webhooks) Get(repo, id string) (*WebhookInfo, error) {
	h, err := w.lookup(repo, id)
	if err != nil {
		return nil, err
	}
	info := h.info(w.head(repo))
	return &info, nil
}

// Deliveries returns a webhook's recent attempts, newest first.
func (w *Webhooks) Deliveries(repo, id string) ([]Delivery, error) {
	h, err := w.lookup(repo, id)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	out := slices.Clone(h.history)
	h.mu.Unlock()
	slices.Reverse(out)
	return out, nil
}

// Delete removes a webhook: it is forgotten on disk first, then its
// goroutine stops (abandoning an attempt in flight). It returns the
// webhook as it was.
func (w *Webhooks) Delete(repo, id string) (*WebhookInfo, error) {
	h, err := w.lookup(repo, id)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	if h.rh.hooks[id] != h {
		w.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindNotFound, "webhook_not_found", "webhook %q does not exist in repo %s", id, repo)
	}
	delete(h.rh.hooks, id)
	w.mu.Unlock()
	if err := w.save(h.rh); err != nil {
		w.mu.Lock()
		h.rh.hooks[id] = h
		w.mu.Unlock()
		return nil, err
	}
	w.mu.Lock()
	stop := h.stop
	h.stop = nil
	w.mu.Unlock()
	if stop != nil {
		stop()
	}
	w.log.Info("webhook deleted", "repo", repo, "webhook", id)
	info := h.info(w.head(repo))
	return &info, nil
}

func (h *hook) info(head int64) WebhookInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	info := WebhookInfo{ID: h.id, Repo: h.repo, URL: h.url, Prefix: h.prefix, Events: slices.Clone(h.events),
		CreatedAt: h.createdAt, Position: h.position, Pending: max(0, head-h.position), Failures: h.failures}
	if n := len(h.history); n > 0 {
		d := h.history[n-1]
		info.LastDelivery = &d
	}
	return info
}

// keep returns the filter of h's changes (nil: all).
func (h *hook) keep() func(string) bool {
	if h.prefix == "" {
		return nil
	}
	return func(key string) bool { return strings.HasPrefix(key, h.prefix) }
}

func (h *hook) pos() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.position
}

func (h *hook) setPosition(rev int64) {
	h.mu.Lock()
	h.position = rev
	h.mu.Unlock()
}

// note records an attempt.
func (h *hook) note(d Delivery, keep int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d.OK() {
		h.failures = 0
	} else {
		h.failures++
	}
	if len(h.history) == keep {
		h.history = slices.Delete(h.history, 0, 1)
	}
	h.history = append(h.history, d)
}
