package watch

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n      int
		lo, hi time.Duration
		want   time.Duration // before jitter
	}{
		{1, time.Second, time.Minute, time.Second},
		{2, time.Second, time.Minute, 2 * time.Second},
		{4, time.Second, time.Minute, 8 * time.Second},
		{7, time.Second, time.Minute, time.Minute},
		{1000, time.Second, 5 * time.Minute, 5 * time.Minute},
		{100, time.Hour, 2 * time.Hour, 2 * time.Hour}, // no overflow
	} {
		for range 50 {
			if got := backoff(c.n, c.lo, c.hi); got < c.want/2 || got > c.want {
				t.Fatalf("backoff(%d, %s, %s) = %s, want within [%s, %s]", c.n, c.lo, c.hi, got, c.want/2, c.want)
			}
		}
	}
}

func TestSign(t *testing.T) {
	// echo -n '{"revision":1}' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"
	const want = "sha256=cd670a16dae9a6b94479703ebdd6783ac3820b379fdb27967b3013b9f7a3e3f8"
	if got := sign([]byte("It's a Secret to Everybody"), []byte(`{"revision":1}`)); got != want {
		t.Fatalf("sign: %q, want %q", got, want)
	}
	if sign([]byte("k"), []byte("a")) == sign([]byte("k"), []byte("b")) || sign([]byte("k1"), []byte("a")) == sign([]byte("k2"), []byte("a")) {
		t.Error("signatures do not depend on the key and the body")
	}
}
