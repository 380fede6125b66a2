package storage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gitstate/gitstate"
)

// keyCases are keys with what ValidateKey must say of them. They also seed
// FuzzValidateKey.
var keyCases = []struct {
	name string
	key  string
	ok   bool
}{
	{"simple", "apps/web/deployment.yaml", true},
	{"one segment", "a", true},
	{"1024 bytes", strings.Repeat("a/", 511) + "bb", true},
	{"1025 bytes", strings.Repeat("a/", 511) + "bbb", false},
	{"1024 bytes of one segment", strings.Repeat("x", 1024), true},
	{"unicode", "配置/ключ/κλειδί.yaml", true},
	{"4-byte unicode", "emoji/🚀.json", true},
	{"spaces", "dir with space/file name.yaml", true},
	{"leading and trailing space in a segment", " a / b ", true},
	{"dots inside segments", "a.b/..c/c../...", true},
	{"dotfile", "app/.env", true},
	{".github", ".github/workflows/ci.yml", true},
	{".gitignore", "app/.gitignore", true},
	{".gitmodules (submodule configuration)", "app/.gitmodules", false},
	{".GITMODULES", ".GITMODULES", false},
	{".gitx", "a/.gitx", true},
	{"x.git", "repo.git/config", true},
	{"git~2", "git~2/x", true},
	{".git~1", ".git~1", true},
	{".git.x", ".git.x", true},
	{"space before .git", " .git", true},
	{"colon", "a:b/c", true},
	{"non-ignorable format char", ".gi\u2060t", true},
	{"reserved prefix is a valid key", ".gitstate/policy.yaml", true},

	{"empty", "", false},
	{"invalid UTF-8", "a/\xff/b", false},
	{"truncated rune", "a/\xe2\x82", false},
	{"NUL", "a\x00b", false},
	{"newline", "a\nb", false},
	{"tab", "a\tb", false},
	{"DEL", "a\x7fb", false},
	{"NEL U+0085", "a\u0085b", false},
	{"C1 U+009F", "a\u009fb", false},
	{"backslash", `a\b`, false},
	{"leading slash", "/a", false},
	{"trailing slash", "a/", false},
	{"only slash", "/", false},
	{"double slash", "a//b", false},
	{"dot segment", "a/./b", false},
	{"dot key", ".", false},
	{"dotdot segment", "a/../b", false},
	{"dotdot key", "..", false},
	{"leading dotdot", "../etc/passwd", false},
	{".git", ".git/config", false},
	{".GIT", "a/.GIT/b", false},
	{".Git at the end", "a/.Git", false},
	{".git with a trailing dot (NTFS)", "a/.git./config", false},
	{".git with a trailing space (NTFS)", ".git /config", false},
	{".git with dots and spaces (NTFS)", ".git. . ", false},
	{"git~1 (NTFS short name)", "git~1/config", false},
	{"GIT~1 (NTFS short name)", "a/GIT~1", false},
	{".git with an NTFS stream", ".git::$INDEX_ALLOCATION/x", false},
	{"git~1 with an NTFS stream", "git~1:x", false},
	{".git with ZWNJ (HFS+)", ".g\u200cit/config", false},
	{".git with BOM (HFS+)", "\ufeff.git", false},
	{".git with LRE (HFS+)", ".gi\u202at", false},
	{".git with NADS (HFS+)", ".GIT\u206f", false},
}

func TestValidateKey(t *testing.T) {
	for _, tc := range keyCases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateKey(tc.key)
			if tc.ok && err != nil {
				t.Fatalf("ValidateKey(%q) = %v, want nil", tc.key, err)
			}
			if !tc.ok && !errors.Is(err, gitstate.ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, want invalid_key", tc.key, err)
			}
			if want := keyIsValid(tc.key); want != tc.ok {
				t.Fatalf("the test's own oracle says %v for %q", want, tc.key)
			}
		})
	}
}

// TestKeysInGit writes every key of keyCases through a Repo: the good ones
// must come back identical from the store and from git show (and git fsck
// --strict, run at cleanup, must accept the trees), the bad ones must be
// refused before anything is written.
func TestKeysInGit(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	dir := s.repoDir(DefaultRepo)
	// Keys such as "a" and "a/.gitx" cannot hold values at once: write,
	// check and delete them one by one.
	for _, tc := range keyCases {
		if !tc.ok {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			value := "value of " + tc.key
			put(t, r, tc.key, value)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := get(t, r, tc.key, 0); got != value {
				t.Errorf("get = %q", got)
			}
			if got := git(t, dir, "show", "main:"+tc.key); got != value {
				t.Errorf("git show = %q", got)
			}
			if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpDelete, Key: tc.key, MustExist: true}}}); err != nil {
				t.Fatalf("delete: %v", err)
			}
		})
	}
	put(t, r, "exists", "x")
	head := r.Head().Revision
	for _, tc := range keyCases {
		if tc.ok {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			for _, op := range []Op{
				{Kind: OpPut, Key: tc.key, Value: []byte("x")},
				{Kind: OpPut, Key: "ok/" + tc.key, Value: []byte("x")},
				{Kind: OpMove, From: "exists", Key: tc.key},
				{Kind: OpRestoreDir, Key: tc.key, Blob: EmptyTreeHash},
			} {
				if op.Kind == OpRestoreDir && op.Key == "" {
					continue // the root: a valid target
				}
				if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{op}}); !errors.Is(err, gitstate.ErrInvalidKey) {
					t.Errorf("op %d on %q: %v, want invalid_key", op.Kind, op.Key, err)
				}
			}
		})
	}
	if r.Head().Revision != head {
		t.Errorf("refused writes moved the head from %d to %d", head, r.Head().Revision)
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"a", true},
		{"a/", true},
		{"apps/web/", true},
		{"apps/we", true},
		// A partial last segment: each begins a valid key.
		{".", true},               // ".env"
		{"a/.", true},             // "a/.env"
		{"a/..", true},            // "a/..x"
		{".git", true},            // ".github/..."
		{"a/.GIT", true},          // "a/.GITHUB"
		{"git~1", true},           // "git~10"
		{"配置/", true},             //
		{"dir with space/", true}, //
		{strings.Repeat("x", 1024), true},

		{"/", false},
		{"//", false},
		{"/a", false},
		{"a//", false},
		{"a//b", false},
		{"./", false},
		{"../", false},
		{"a/./", false},
		{"a/../b", false},
		{".git/", false},
		{".git./", false},
		{"a/.git/b", false},
		{"a\\", false},
		{"a\x00", false},
		{"a\u0085", false},
		{"\xff", false},
		{strings.Repeat("x", 1025), false},
		{strings.Repeat("x", 1024) + "/", false},
	} {
		err := ValidatePrefix(tc.prefix)
		if tc.ok && err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", tc.prefix, err)
		}
		if !tc.ok && !errors.Is(err, gitstate.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want invalid_key", tc.prefix, err)
		}
	}
}

func TestValidateRepoName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"default", true},
		{"a", true},
		{"0", true},
		{"team-a", true},
		{"a-", true},
		{"a--b", true},
		{strings.Repeat("a", 63), true},

		{"", false},
		{strings.Repeat("a", 64), false},
		{"-a", false},
		{"A", false},
		{"Team", false},
		{"a_b", false},
		{"a.b", false},
		{"a/b", false},
		{"a b", false},
		{"..", false},
		{"é", false},
		{"a\x00", false},
	} {
		err := ValidateRepoName(tc.name)
		if tc.ok && err != nil {
			t.Errorf("ValidateRepoName(%q) = %v, want nil", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, gitstate.ErrInvalidRepoName) {
			t.Errorf("ValidateRepoName(%q) = %v, want invalid_repo_name", tc.name, err)
		}
	}
}

// FuzzValidateKey checks ValidateKey against keyIsValid, an independent
// reading of the rules, and checks that what it accepts can be a path in a
// Git tree and is a valid prefix, as are its beginnings.
func FuzzValidateKey(f *testing.F) {
	for _, tc := range keyCases {
		f.Add(tc.key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := ValidateKey(key)
		if want := keyIsValid(key); want != (err == nil) {
			t.Fatalf("ValidateKey(%q) = %v, oracle says valid=%v", key, err, want)
		}
		if err != nil {
			if !errors.Is(err, gitstate.ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, not invalid_key", key, err)
			}
			return
		}
		if len(key) > MaxKeyLen || !utf8.ValidString(key) {
			t.Fatalf("accepted %q: too long or not UTF-8", key)
		}
		segs := strings.Split(key, "/")
		tree := &Tree{}
		for _, seg := range segs {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsRune(seg, 0) || gitTakesForDotGit(seg) {
				t.Fatalf("accepted %q with segment %q", key, seg)
			}
			tree.Entries = append(tree.Entries, TreeEntry{Name: seg, Mode: ModeFile, Hash: HashObject(BlobObject, []byte(seg))})
		}
		// Every segment survives a round trip through a Git tree.
		sortTree(tree.Entries)
		back, err := DecodeTree(tree.Encode())
		if err != nil || len(back.Entries) != len(tree.Entries) {
			t.Fatalf("tree of %q: %v", key, err)
		}
		for i := range back.Entries {
			if back.Entries[i] != tree.Entries[i] {
				t.Fatalf("tree entry %q came back as %q", tree.Entries[i].Name, back.Entries[i].Name)
			}
		}
		// A key is a valid prefix, and so is each of its beginnings. Long
		// keys are cut at a sample of places, and at the start of segments,
		// where "." or ".git" begins a longer name.
		for _, i := range cutPoints(key) {
			if err := ValidatePrefix(key[:i]); err != nil {
				t.Fatalf("ValidatePrefix(%q), a beginning of the valid key %q: %v", key[:i], key, err)
			}
		}
	})
}

// cutPoints returns places, at rune starts, to cut key into a prefix: all
// of them for a short key, else 64 spread over it and the first 6 bytes of
// each of its first 32 segments.
func cutPoints(key string) []int {
	var out []int
	add := func(i int) {
		for i < len(key) && !utf8.RuneStart(key[i]) {
			i++
		}
		out = append(out, i)
	}
	if len(key) <= 64 {
		for i := range len(key) + 1 {
			add(i)
		}
		return out
	}
	for i := range 65 {
		add(i * len(key) / 64)
	}
	start := 0
	for range 32 {
		for j := start; j <= min(start+6, len(key)); j++ {
			add(j)
		}
		next := strings.IndexByte(key[start:], '/')
		if next < 0 {
			break
		}
		start += next + 1
	}
	return out
}

// keyIsValid is the key rules read independently of ValidateKey.
func keyIsValid(key string) bool {
	if len(key) == 0 || len(key) > MaxKeyLen || !utf8.ValidString(key) {
		return false
	}
	if strings.ContainsFunc(key, func(r rune) bool {
		return r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\\'
	}) {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || gitTakesForDotGit(seg) || strings.ToLower(seg) == ".gitmodules" {
			return false
		}
	}
	return true
}

// gitTakesForDotGit says whether git fsck --strict reports a tree entry
// name as hasDotgit. Checked against git 2.39 with git mktree and git fsck.
func gitTakesForDotGit(name string) bool {
	// HFS+: ".git" in any case once ignorable code points are removed.
	var b strings.Builder
	for _, r := range name {
		if !strings.ContainsRune("\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u206a\u206b\u206c\u206d\u206e\u206f\ufeff", r) {
			b.WriteRune(r)
		}
	}
	if strings.ToLower(b.String()) == ".git" {
		return true
	}
	// NTFS: an alternate data stream after ':' is not part of the name, and
	// trailing dots and spaces are dropped; git~1 is .git's short name.
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	name = strings.ToLower(strings.TrimRight(name, ". "))
	return name == ".git" || name == "git~1"
}
