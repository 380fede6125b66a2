package storage

import (
	"context"
	"fmt"
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
		{"gitstate_cache_bytes{hot,}", 1},
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

// TestMergeMetric checks that a merge of packs is timed in
// gitstate_pack_merge_duration_seconds.
func TestMergeMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newTestStore(t, func(o *Options) {
		o.Registerer = reg
		o.FS.MaxPacks = 2
	})
	r := defaultRepo(t, s)
	count := func() uint64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "gitstate_pack_merge_duration_seconds" {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		t.Fatal("gitstate_pack_merge_duration_seconds not reported")
		return 0
	}
	if n := count(); n != 0 {
		t.Fatalf("%d merges before any write", n)
	}
	// A pack per flush; past MaxPacks, the flush merges them.
	for i := range 4 {
		put(t, r, "k", fmt.Sprint(i))
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n == 0 {
		t.Fatal("no merge timed after 4 packs with MaxPacks 2")
	}
}
