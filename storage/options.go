package storage

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Store. Zero values give the defaults.
type Options struct {
	// MaxValueSize is the largest value, in bytes (default 1 MiB).
	MaxValueSize int64
	// InlineValueMax is the largest value the index keeps inline, so that
	// a read at head needs no Git object (default 64 KiB).
	InlineValueMax int
	// TreeCacheEntries bounds the decoded-tree cache, which all repos
	// share (default 65,536 trees); each repo also keeps up to a quarter
	// as many decoded commits.
	TreeCacheEntries int
	// TreeCacheBytes bounds the same cache by the memory its trees hold, as
	// estimated (default 64 MiB, for all repos together).
	TreeCacheBytes int64
	// IndexCacheBytes is the index's block cache (default 64 MiB).
	IndexCacheBytes int64
	// HotCacheBytes bounds the cache of values read at head, all repos'
	// together (default 32 MiB, also the least it takes; negative disables
	// it).
	HotCacheBytes int64
	// FS tunes the Git backends.
	FS FSOptions
	// Logger receives structured logs (default: discarded).
	Logger *slog.Logger
	// Registerer, if set, receives the store's metrics.
	Registerer prometheus.Registerer
	// CheckImport, if set, examines what an import fetched before the repo
	// is placed (see ImportCheck).
	CheckImport ImportCheck
}

func (o *Options) setDefaults() {
	if o.MaxValueSize <= 0 {
		o.MaxValueSize = 1 << 20
	}
	if o.InlineValueMax <= 0 {
		o.InlineValueMax = 64 << 10
	}
	if o.HotCacheBytes == 0 {
		o.HotCacheBytes = 32 << 20
	}
	if o.TreeCacheBytes <= 0 {
		o.TreeCacheBytes = 64 << 20
	}
	if o.TreeCacheEntries <= 0 {
		o.TreeCacheEntries = 65536
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FS.Logger == nil {
		o.FS.Logger = o.Logger
	}
}

// Metrics are the store's Prometheus metrics.
type Metrics struct {
	commitDuration prometheus.Histogram
	groupSize      prometheus.Histogram
	syncDuration   prometheus.Histogram
	flushDuration  prometheus.Histogram
	mergeDuration  prometheus.Histogram
	headRevision   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gitstate_commit_group_duration_seconds",
			Help:    "Time to apply a group of writes and make it durable.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gitstate_commit_group_size",
			Help:    "Write requests made durable by one journal sync.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gitstate_journal_fsync_duration_seconds",
			Help:    "Latency of the journal's fdatasync.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gitstate_git_flush_duration_seconds",
			Help:    "Time to write journaled objects and refs to Git's files.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		mergeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gitstate_pack_merge_duration_seconds",
			Help:    "Time to merge packs into one (compaction; at a pause in the writes, or past MaxPacks).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		headRevision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gitstate_head_revision",
			Help: "Current revision of each repo's main branch.",
		}, []string{"repo"}),
	}
	if reg != nil {
		reg.MustRegister(m.commitDuration, m.groupSize, m.syncDuration, m.flushDuration, m.mergeDuration, m.headRevision)
	}
	return m
}

func (m *Metrics) observeGroup(n int, d time.Duration) {
	m.groupSize.Observe(float64(n))
	m.commitDuration.Observe(d.Seconds())
}
