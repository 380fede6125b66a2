package storage

import "github.com/prometheus/client_golang/prometheus"

// cacheCollector reports the store's caches to Prometheus when scraped:
// the index's block cache (shared by every repo) and each repo's tree
// and hot-value caches. A cache that never hits is a misconfiguration
// that no test of results catches (the index's block cache once held
// nothing, its budget taken by pebble's memtables).
type cacheCollector struct {
	s                    *Store
	hits, misses, nbytes *prometheus.Desc
}

func newCacheCollector(s *Store) *cacheCollector {
	labels := []string{"cache", "repo"}
	return &cacheCollector{
		s: s,
		hits: prometheus.NewDesc("gitstate_cache_hits_total",
			"Lookups a cache answered: index_blocks (the index's block cache, all repos), trees (decoded trees, under one bound for all repos; each repo's share), hot (values read at head, one cache for all repos).", labels, nil),
		misses: prometheus.NewDesc("gitstate_cache_misses_total",
			"Lookups a cache could not answer.", labels, nil),
		nbytes: prometheus.NewDesc("gitstate_cache_bytes",
			"Bytes a cache holds (for trees, as estimated for their bound; for hot values, all repos' together, under repo=\"\").", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hits
	ch <- c.misses
	ch <- c.nbytes
}

// Collect implements prometheus.Collector.
func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(cache, repo string, hits, misses, bytes int64) {
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(hits), cache, repo)
		ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(misses), cache, repo)
		ch <- prometheus.MustNewConstMetric(c.nbytes, prometheus.GaugeValue, float64(bytes), cache, repo)
	}
	bc := c.s.ix.db.Metrics().BlockCache
	emit("index_blocks", "", bc.Hits, bc.Misses, bc.Size)
	c.s.mu.RLock()
	repos := make([]*Repo, 0, len(c.s.repos))
	for _, r := range c.s.repos {
		repos = append(repos, r)
	}
	c.s.mu.RUnlock()
	for _, r := range repos {
		emit("trees", r.name, r.trees.hits.Load(), r.trees.misses.Load(), r.trees.bytes.Load())
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(r.hot.hits.Load()), "hot", r.name)
		ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(r.hot.misses.Load()), "hot", r.name)
	}
	// The hot values of all repos are one cache: its bytes are not split.
	ch <- prometheus.MustNewConstMetric(c.nbytes, prometheus.GaugeValue, float64(c.s.caches.hot.bytes()), "hot", "")
}
