package watch

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gitstate/gitstate/api/wire"
)

// run delivers h's revisions in order until ctx ends: each revision after
// h's position that changes something under its prefix is delivered (and
// retried until the receiver takes it) before the next is looked at.
func (w *Webhooks) run(ctx context.Context, h *hook) {
	feed, err := w.hub.Feed(h.repo)
	if err != nil {
		w.log.Error("webhook: no feed; not delivering", "repo", h.repo, "webhook", h.id, "err", err)
		return
	}
	keep := h.keep()
	for {
		entries, _, wake, err := feed.Since(h.pos(), 64)
		if err != nil {
			w.log.Warn("webhook: reading revisions", "repo", h.repo, "webhook", h.id, "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		passed := false // positions moved past filtered-out revisions, not yet saved
		for _, e := range entries {
			rev := e.Info.Revision
			body, ok := e.For(keep, nil)
			if !ok {
				h.setPosition(rev)
				passed = true
				continue
			}
			if !w.deliver(ctx, h, rev, body) {
				return
			}
			h.setPosition(rev)
			passed = false
			w.saveLogged(h)
		}
		if passed {
			w.saveLogged(h)
		}
		if len(entries) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

func (w *Webhooks) saveLogged(h *hook) {
	if err := w.save(h.rh); err != nil {
		// The position stays in memory; a restart before the next good
		// write delivers again (with the same delivery ids).
		w.log.Error("webhook: writing position", "repo", h.repo, "webhook", h.id, "err", err)
	}
}

// deliver sends one revision until the receiver answers 2xx, waiting
// between attempts. It returns false when ctx ends first.
func (w *Webhooks) deliver(ctx context.Context, h *hook, rev int64, body []byte) bool {
	id := h.id + "-" + strconv.FormatInt(rev, 10)
	sig := sign(h.secret, body)
	for attempt := 1; ; attempt++ {
		d := w.attempt(ctx, h, id, rev, attempt, body, sig)
		if d.OK() {
			h.note(d, w.opts.History)
			return true
		}
		if ctx.Err() != nil {
			return false // abandoned, not failed: attempted again after a restart
		}
		h.note(d, w.opts.History)
		wait := backoff(attempt, w.opts.MinBackoff, w.opts.MaxBackoff)
		w.log.Warn("webhook delivery failed", "repo", h.repo, "webhook", h.id, "revision", rev, "attempt", attempt,
			"status", d.StatusCode, "err", d.Err, "retry_in", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// attempt makes one delivery attempt.
func (w *Webhooks) attempt(ctx context.Context, h *hook, id string, rev int64, n int, body []byte, sig string) Delivery {
	d := Delivery{ID: id, Revision: rev, Attempt: n, Time: time.Now().UTC()}
	actx, cancel := context.WithTimeout(ctx, w.opts.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		d.Err = err.Error()
		return d
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gitstate-webhook")
	req.Header.Set(wire.HeaderEvent, EventRevision)
	req.Header.Set(wire.HeaderDelivery, id)
	req.Header.Set(wire.HeaderWebhook, h.id)
	req.Header.Set(wire.HeaderRevision, strconv.FormatInt(rev, 10))
	req.Header.Set(wire.HeaderSignature, sig)
	start := time.Now()
	resp, err := w.opts.Client.Do(req)
	if err == nil {
		// Read (a bounded part of) the answer so the connection is reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		d.StatusCode = resp.StatusCode
		if !d.OK() {
			d.Err = "receiver answered " + resp.Status
		}
	} else {
		d.Err = attemptError(err, actx, ctx, w.opts.AttemptTimeout)
	}
	d.Duration = time.Since(start)
	w.mx.observe(h.repo, &d)
	return d
}

// attemptError describes a failed request without its URL (which may carry
// a token in its query).
func attemptError(err error, attempt, parent context.Context, timeout time.Duration) string {
	if errors.Is(attempt.Err(), context.DeadlineExceeded) && parent.Err() == nil {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// sign returns the X-Gitstate-Signature of body: "sha256=" and the hex
// HMAC-SHA256 of the body keyed with secret.
func sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// backoff returns the wait after the n-th failed attempt: lo doubled n-1
// times, at most hi, jittered to between half and all of it.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, returning false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// webhookMetrics are the delivery metrics.
type webhookMetrics struct {
	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newWebhookMetrics(w *Webhooks, reg prometheus.Registerer) *webhookMetrics {
	m := &webhookMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitstate_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: ok (2xx), http_error (another status) or error (no answer).",
		}, []string{"repo", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gitstate_webhook_delivery_duration_seconds",
			Help:    "Latency of webhook delivery attempts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"repo"}),
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.duration, &pendingCollector{w: w, desc: prometheus.NewDesc(
			"gitstate_webhook_pending_revisions",
			"Revisions of main after the last one a webhook delivered or passed over.",
			[]string{"repo", "webhook"}, nil)})
	}
	return m
}

func (m *webhookMetrics) observe(repo string, d *Delivery) {
	outcome := "ok"
	switch {
	case d.StatusCode == 0:
		outcome = "error"
	case !d.OK():
		outcome = "http_error"
	}
	m.attempts.WithLabelValues(repo, outcome).Inc()
	m.duration.WithLabelValues(repo).Observe(d.Duration.Seconds())
}

// pendingCollector reports each webhook's pending revisions when scraped.
type pendingCollector struct {
	w    *Webhooks
	desc *prometheus.Desc
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	c.w.mu.Lock()
	repos := make([]string, 0, len(c.w.repos))
	for name := range c.w.repos {
		repos = append(repos, name)
	}
	c.w.mu.Unlock()
	for _, repo := range repos {
		for _, info := range c.w.List(repo) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(info.Pending), repo, info.ID)
		}
	}
}
