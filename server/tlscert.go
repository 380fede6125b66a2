package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certCheckInterval is how often the certificate files are looked at
// (two stats), at most: by the first TLS handshake after it has passed.
const certCheckInterval = time.Second

// certReloader serves a TLS certificate from a pair of PEM files and
// reloads it when either file changes (its modification time or size), so
// that a renewal (cert-manager, an ACME client) needs no restart. Files
// that do not load leave the previous certificate in service, with one
// warning per change. GetCertificate is safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	cert atomic.Pointer[tls.Certificate]
	next atomic.Int64 // Unix nanoseconds of the next check

	mu        sync.Mutex // held by the check; guards what follows
	loaded    pairStamp  // the files of cert
	failed    pairStamp  // the files that last failed to load, warned about
	hasFailed bool
}

// fileStamp is what tells a changed file: its modification time and size.
type fileStamp struct {
	mod  int64
	size int64
}

// pairStamp stamps the certificate file and the key file.
type pairStamp [2]fileStamp

// newCertReloader loads the pair, or fails.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.loaded = st
	r.cert.Store(&cert)
	r.next.Store(time.Now().Add(certCheckInterval).UnixNano())
	return r, nil
}

// GetCertificate is the tls.Config hook: the current certificate, looked
// for anew at most every certCheckInterval. A handshake that finds another
// one checking does not wait for it.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if now := time.Now(); now.UnixNano() >= r.next.Load() && r.mu.TryLock() {
		r.next.Store(now.Add(certCheckInterval).UnixNano())
		r.checkLocked()
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// checkLocked reloads the pair if its files changed since they were
// loaded, and warns once about files that do not load.
func (r *certReloader) checkLocked() {
	st, err := r.stat()
	if err == nil && st == r.loaded {
		return
	}
	if r.hasFailed && st == r.failed {
		return // warned about already (a stat error stamps zero)
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.LoadX509KeyPair(r.certFile, r.keyFile)
	}
	if err != nil {
		r.failed, r.hasFailed = st, true
		r.log.Warn("the TLS certificate files changed but do not load: still serving the previous certificate",
			"cert", r.certFile, "key", r.keyFile, "err", err)
		return
	}
	r.loaded, r.hasFailed = st, false
	r.cert.Store(&cert)
	attrs := []any{"cert", r.certFile}
	if leaf := cert.Leaf; leaf != nil {
		attrs = append(attrs, "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	}
	r.log.Info("TLS certificate reloaded", attrs...)
}

// stat stamps the pair's files; a file that is missing or unreadable
// stamps the pair zero.
func (r *certReloader) stat() (pairStamp, error) {
	var st pairStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return pairStamp{}, fmt.Errorf("stat TLS file: %w", err)
		}
		st[i] = fileStamp{mod: fi.ModTime().UnixNano(), size: fi.Size()}
	}
	return st, nil
}
