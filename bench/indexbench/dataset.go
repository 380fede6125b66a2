package indexbench

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
)

// dataset describes the preloaded index: apps × envs × resources keys under
// one repository, written in commits of keysPerCommit keys.
type dataset struct {
	repo                     string
	apps, envs, resources    int
	keysPerCommit            int
	commitsPerLoadBatch      int
	minValueLen, maxValueLen int
}

// benchData is the workload of the issue: 100,000 keys, 10,000 revisions.
var benchData = dataset{
	repo:                "gitstate-bench",
	apps:                100,
	envs:                10,
	resources:           100,
	keysPerCommit:       10,
	commitsPerLoadBatch: 100,
	minValueLen:         200,
	maxValueLen:         2000,
}

// n is the number of keys.
func (d dataset) n() int { return d.apps * d.envs * d.resources }

// key returns the index key of the i-th key. Keys are numbered in key order.
func (d dataset) key(i int) []byte {
	res := i % d.resources
	env := i / d.resources % d.envs
	app := i / (d.resources * d.envs)
	return fmt.Appendf(nil, "%s\x00apps/app-%03d/env-%02d/res-%03d.yaml", d.repo, app, env, res)
}

// appPrefix returns the prefix shared by the envs × resources keys of app.
func (d dataset) appPrefix(app int) []byte {
	return fmt.Appendf(nil, "%s\x00apps/app-%03d/", d.repo, app)
}

// revKey appends the index key of revision rev to dst.
func (d dataset) revKey(dst []byte, rev uint64) []byte {
	dst = append(dst, d.repo...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, rev)
}

// revPrefix returns the prefix shared by all revision keys whose revision
// is below 2^56 (the first byte of the big-endian revision is 0).
func (d dataset) revPrefix() []byte {
	return append([]byte(d.repo), 0, 0)
}

// loadBatches generates the initial load, as a rebuild from Git would write
// it, and passes it to fn one batch at a time: commitsPerLoadBatch commits,
// each setting keysPerCommit keys (in a seeded random order) and writing one
// revision record. fn must not retain ops. It returns the last revision.
func (d dataset) loadBatches(seed uint64, fn func(ops []op) error) (uint64, error) {
	if d.n()%d.keysPerCommit != 0 {
		return 0, fmt.Errorf("%d keys do not split into commits of %d", d.n(), d.keysPerCommit)
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	order := r.Perm(d.n())
	var (
		rev uint64
		ops []op
	)
	for start := 0; start < len(order); start += d.keysPerCommit {
		rev++
		for _, i := range order[start : start+d.keysPerCommit] {
			ops = append(ops, op{d.key(i), d.record(r, nil, i, rev)})
		}
		ops = append(ops, op{d.revKey(nil, rev), revisionRecord(r, nil, rev, d.keysPerCommit)})
		if rev%uint64(d.commitsPerLoadBatch) == 0 || start+d.keysPerCommit == len(order) {
			if err := fn(ops); err != nil {
				return rev, err
			}
			ops = ops[:0]
		}
	}
	return rev, nil
}

// record appends to dst the encoded index record of key i at revision rev,
// with a fresh random value.
func (d dataset) record(r *rand.Rand, dst []byte, i int, rev uint64) []byte {
	value := yamlValue(r, nil, i, d.minValueLen+r.IntN(d.maxValueLen-d.minValueLen+1))
	var blob [20]byte
	for j := range blob {
		blob[j] = byte(r.Uint32())
	}
	return encodeRecord(dst, blob, 0o100644, rev, value)
}

// maxInline is the largest value stored inline in a record.
const maxInline = 64 << 10

// encodeRecord appends the index record layout to dst: blob id (20 bytes),
// mode (4), size (8), mod_revision (8), then the value if it is at most
// maxInline bytes.
func encodeRecord(dst []byte, blob [20]byte, mode uint32, modRev uint64, value []byte) []byte {
	dst = append(dst, blob[:]...)
	dst = binary.BigEndian.AppendUint32(dst, mode)
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(value)))
	dst = binary.BigEndian.AppendUint64(dst, modRev)
	if len(value) <= maxInline {
		dst = append(dst, value...)
	}
	return dst
}

// yamlValue appends exactly n bytes of Kubernetes-manifest-like YAML for key
// i to dst, so that compression sees realistic text.
func yamlValue(r *rand.Rand, dst []byte, i, n int) []byte {
	start := len(dst)
	dst = fmt.Appendf(dst, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"+
		"  name: res-%03d\n  labels:\n    app.kubernetes.io/part-of: gitstate\n"+
		"spec:\n  replicas: %d\n  template:\n    spec:\n      containers:\n"+
		"      - name: main\n        image: registry.example/svc-%d@sha256:%016x%016x\n"+
		"        env:\n", i%1000, 1+r.IntN(5), i%97, r.Uint64(), r.Uint64())
	words := [...]string{"enabled", "disabled", "debug", "info", "us-east-1", "eu-west-1", "true", "false", "v2", "primary"}
	for len(dst)-start < n {
		dst = fmt.Appendf(dst, "        - name: VAR_%d\n          value: %q\n", r.IntN(200), words[r.IntN(len(words))])
		if r.IntN(4) == 0 {
			dst = fmt.Appendf(dst, "        - name: LIMIT_%d\n          value: \"%d\"\n", r.IntN(50), r.IntN(100000))
		}
	}
	return dst[:start+n]
}

// revisionRecord appends a ~300-byte JSON commit summary to dst.
func revisionRecord(r *rand.Rand, dst []byte, rev uint64, keys int) []byte {
	var commit, parent, tree [20]byte
	for _, id := range [][]byte{commit[:], parent[:], tree[:]} {
		for j := range id {
			id[j] = byte(r.Uint32())
		}
	}
	return fmt.Appendf(dst, `{"rev":%d,"commit":"%s","parent":"%s","tree":"%s",`+
		`"author":"deploy-bot <deploy-bot@example.com>","time":"2026-01-%02dT%02d:%02d:%02dZ",`+
		`"message":"apply %d changes from pipeline run %d","keys":%d}`,
		rev, hex.EncodeToString(commit[:]), hex.EncodeToString(parent[:]), hex.EncodeToString(tree[:]),
		1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), keys, r.IntN(1000000), keys)
}
