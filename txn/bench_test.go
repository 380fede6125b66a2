package txn

import (
	"context"
	"fmt"
	"testing"

	"github.com/gitstate/gitstate/storage"
)

// BenchmarkTxn10Keys measures a 10-key transaction (begin, one batch of 10
// writes, preview with conflicts and diff against main, commit) on repos of
// 1,000 and 100,000 keys: the two should cost about the same, since every
// step is proportional to the changed keys and their depth.
func BenchmarkTxn10Keys(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ctx := context.Background()
			st, err := storage.Open(ctx, b.TempDir(), storage.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			repo, _ := st.Repo(storage.DefaultRepo)
			// apps/<app>/<env>/<resource>.yaml, 100 keys per directory.
			for start := 0; start < n; start += 10000 {
				var ops []storage.Op
				for i := start; i < min(start+10000, n); i++ {
					ops = append(ops, storage.Op{Kind: storage.OpPut,
						Key:   fmt.Sprintf("apps/app%03d/env%d/res%03d.yaml", i/1000, (i/100)%10, i%100),
						Value: fmt.Appendf(nil, "kind: ConfigMap\nname: res%d\ndata: %d\n", i, i)})
				}
				if _, err := repo.WriteOne(ctx, &storage.Batch{Ops: ops}); err != nil {
					b.Fatal(err)
				}
			}
			m := NewManager(st, Options{})
			defer m.Close()
			a := Actor{Name: "bench"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tx, err := m.Begin(ctx, storage.DefaultRepo, a, "bench", 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				var ops []storage.Op
				for k := 0; k < 10; k++ {
					ops = append(ops, storage.Op{Kind: storage.OpPut,
						Key:   fmt.Sprintf("apps/app%03d/env%d/res%03d.yaml", (k*7)%max(n/1000, 1), k%10, k),
						Value: fmt.Appendf(nil, "kind: ConfigMap\nrun: %d\n", i)})
				}
				if _, err := m.Write(ctx, storage.DefaultRepo, tx.ID, a, &storage.Batch{Ops: ops}); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Describe(ctx, storage.DefaultRepo, tx.ID); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Diff(ctx, storage.DefaultRepo, tx.ID, true); err != nil {
					b.Fatal(err)
				}
				if _, _, err := m.Commit(ctx, storage.DefaultRepo, tx.ID, a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
