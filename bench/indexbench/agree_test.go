package indexbench

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// smallData is benchData's shape at 300 keys, small enough for a unit test.
var smallData = dataset{
	repo:                "repo",
	apps:                3,
	envs:                4,
	resources:           25,
	keysPerCommit:       5,
	commitsPerLoadBatch: 4,
	minValueLen:         200,
	maxValueLen:         2000,
}

// model is the reference the stores are checked against: a plain map.
type model map[string][]byte

func (m model) apply(ops []op) {
	for _, o := range ops {
		m[string(o.key)] = bytes.Clone(o.value)
	}
}

func (m model) scan(prefix []byte, limit int) []op {
	var keys []string
	for k := range m {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []op
	for _, k := range keys[:min(limit, len(keys))] {
		out = append(out, op{[]byte(k), m[k]})
	}
	return out
}

func scanAll(t *testing.T, s kv, prefix []byte, limit int) []op {
	t.Helper()
	var out []op
	err := s.Scan(prefix, limit, func(k, v []byte) error {
		out = append(out, op{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("scan %q: %v", prefix, err)
	}
	return out
}

// checkAgainst compares every key of m, some absent keys and a set of scans
// between s and m.
func checkAgainst(t *testing.T, s kv, m model, d dataset) {
	t.Helper()
	var buf []byte
	for k, want := range m {
		got, ok, err := s.Get(buf, []byte(k))
		if err != nil || !ok || !bytes.Equal(got, want) {
			t.Fatalf("get %q: ok=%v err=%v, value equal=%v", k, ok, err, bytes.Equal(got, want))
		}
		buf = got
	}
	absent := [][]byte{
		[]byte(d.repo + "\x00apps/app-999/env-00/res-000.yaml"),
		d.appPrefix(0),        // a prefix of existing keys
		append(d.key(0), 'x'), // an existing key plus a byte
		[]byte("other\x00apps/app-000/env-00/res-000.yaml"), // another repository
		d.revKey(nil, 1<<40),
	}
	for _, k := range absent {
		if _, ok, err := s.Get(buf, k); err != nil || ok {
			t.Fatalf("get absent %q: ok=%v err=%v", k, ok, err)
		}
	}

	scans := []struct {
		prefix []byte
		limit  int
	}{
		{d.appPrefix(0), 1000},
		{d.appPrefix(1), 1000},
		{d.appPrefix(2), 7},
		{[]byte(d.repo + "\x00apps/app-00"), 150}, // crosses from app-000 into app-001
		{[]byte(d.repo + "\x00apps/"), 1000},      // every key
		{[]byte(d.repo + "\x00apps/app-001/env-02/res-01"), 1000},
		{[]byte(d.repo + "\x00apps/app-999/"), 1000}, // nothing
		{d.revPrefix(), 1000},                        // every revision
		{d.revPrefix(), 3},
		{d.revKey(nil, 7), 10}, // a whole key as prefix
		{[]byte(d.repo + "\xff"), 10},
		{nil, 5},
	}
	for _, sc := range scans {
		got, want := scanAll(t, s, sc.prefix, sc.limit), m.scan(sc.prefix, sc.limit)
		if !slices.EqualFunc(got, want, func(a, b op) bool {
			return bytes.Equal(a.key, b.key) && bytes.Equal(a.value, b.value)
		}) {
			t.Fatalf("scan %q limit %d: got %d entries, want %d (or different contents)",
				sc.prefix, sc.limit, len(got), len(want))
		}
	}
}

// TestStoresAgree loads the same data into every engine and a map, then
// checks gets and scans after the load, after a batch of updates, and after
// a clean close and reopen.
func TestStoresAgree(t *testing.T) {
	d := smallData
	if got := d.n(); got != 300 {
		t.Fatalf("smallData has %d keys", got)
	}
	for i := 1; i < d.n(); i++ {
		if bytes.Compare(d.key(i-1), d.key(i)) >= 0 {
			t.Fatalf("key %d (%q) does not sort before key %d (%q)", i-1, d.key(i-1), i, d.key(i))
		}
	}

	dirs := map[string]string{}
	stores := map[string]kv{}
	for _, e := range engines {
		dirs[e.name] = t.TempDir()
		s, err := e.open(dirs[e.name])
		if err != nil {
			t.Fatalf("open %s: %v", e.name, err)
		}
		stores[e.name] = s
	}
	t.Cleanup(func() {
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
	})

	m := model{}
	lastRev, err := d.loadBatches(42, func(ops []op) error {
		m.apply(ops)
		for _, s := range stores {
			if err := s.ApplyBatch(ops); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(d.n() / d.keysPerCommit); lastRev != want {
		t.Fatalf("load wrote %d revisions, want %d", lastRev, want)
	}
	if len(m) != d.n()+int(lastRev) {
		t.Fatalf("model has %d entries, want %d", len(m), d.n()+int(lastRev))
	}

	// A group commit: overwrite some keys, add a new key and a revision.
	r := rand.New(rand.NewPCG(7, 7))
	update := []op{
		{d.key(3), d.record(r, nil, 3, lastRev+1)},
		{d.key(250), d.record(r, nil, 250, lastRev+1)},
		{[]byte(d.repo + "\x00apps/app-001/env-00/new.yaml"), d.record(r, nil, 0, lastRev+1)},
		{d.revKey(nil, lastRev+1), revisionRecord(r, nil, lastRev+1, 3)},
	}

	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := stores[e.name]
			checkAgainst(t, s, m, d)
			if err := s.ApplyBatch(update); err != nil {
				t.Fatal(err)
			}
			after := maps.Clone(m)
			after.apply(update)
			checkAgainst(t, s, after, d)

			stores[e.name] = nil
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := e.open(dirs[e.name])
			if err != nil {
				t.Fatal(err)
			}
			stores[e.name] = s
			checkAgainst(t, s, after, d)
		})
	}
}

// TestDataset checks the sizes the benchmark claims for its data.
func TestDataset(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{200, 1000, 2000} {
		if got := len(yamlValue(r, nil, 5, n)); got != n {
			t.Errorf("yamlValue(%d) is %d bytes", n, got)
		}
	}
	if n := len(revisionRecord(r, nil, 12345, 10)); n < 250 || n > 350 {
		t.Errorf("revision record is %d bytes, want about 300", n)
	}
	if got, want := string(benchData.key(benchData.n()-1)),
		"gitstate-bench\x00apps/app-099/env-09/res-099.yaml"; got != want {
		t.Errorf("last key = %q, want %q", got, want)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte("a\x00"), []byte("a\x01")},
		{[]byte("\xff\xff"), nil},
		{nil, nil},
	} {
		if got := prefixEnd(tc.in); !bytes.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("prefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
