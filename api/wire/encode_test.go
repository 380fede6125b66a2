package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

// checkAppendString compares AppendString, for a string and for its bytes,
// with json.Marshal, byte for byte.
func checkAppendString(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
		t.Fatalf("AppendString(%q) = %s, want x%s", s, got, want)
	}
	if got := AppendString(nil, []byte(s)); string(got) != string(want) {
		t.Fatalf("AppendString([]byte(%q)) = %s, want %s", s, got, want)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "<html> & co", "\b\f\n\r\t\x00\x1f\x7f",
		"é, 日本, 🙂", "\u2028\u2029", "bad \xff byte", "cut \xe6\x97", "\xed\xa0\x80 surrogate",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \"web\"\n",
	} {
		checkAppendString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<\u2028>", "\xff\xfe", "日本\n"} {
		f.Add(s)
	}
	f.Fuzz(checkAppendString)
}

// TestAppendStringAllocates checks that quoting bytes with non-ASCII
// runes in them allocates nothing beyond the buffer.
func TestAppendStringAllocates(t *testing.T) {
	v := []byte("name: café — \u2028 \xff done")
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], v) }); n != 0 {
		t.Errorf("%.1f allocations per quote, want 0", n)
	}
}

func BenchmarkAppendString(b *testing.B) {
	v := []byte(strings.Repeat("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \"web\"\n", 8))
	buf := make([]byte, 0, 2*len(v))
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		buf = AppendString(buf[:0], v)
	}
}
