package storage

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newTestStore(t, func(o *Options) { o.Registerer = reg })
	r := defaultRepo(t, s)
	ctx := context.Background()
	put(t, r, "a/b", "v")
	if err := s.ix.db.Flush(); err != nil {
		t.Fatal(err)
	}
	// The first read misses the hot cache, the second hits it.
	get(t, r, "a/b", 0)
	get(t, r, "a/b", 0)
	// A listing reads the index's tables through its block cache.
	for range 2 {
		if _, err := r.List(ctx, ListOptions{Prefix: "a/"}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]float64{} // name{cache,repo} -> value
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if _, ok := labels["cache"]; !ok {
				continue
			}
			got[mf.GetName()+"{"+labels["cache"]+","+labels["repo"]+"}"] = value(m)
		}
	}
	for _, tc := range []struct {
		metric string
		min    float64
	}{
		{"gitstate_cache_hits_total{hot,default}", 1},
		{"gitstate_cache_misses_total{hot,default}", 1},
		{"gitstate_cache_bytes{hot,default}", 1},
		{"gitstate_cache_hits_total{index_blocks,}", 1},
		{"gitstate_cache_bytes{index_blocks,}", 1},
		{"gitstate_cache_misses_total{trees,default}", 0},
		{"gitstate_cache_bytes{trees,default}", 1},
	} {
		v, ok := got[tc.metric]
		if !ok {
			t.Errorf("%s: not reported (got %v)", tc.metric, got)
		} else if v < tc.min {
			t.Errorf("%s = %v, want at least %v", tc.metric, v, tc.min)
		}
	}
}

func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}
