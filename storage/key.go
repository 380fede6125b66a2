package storage

import (
	"strings"
	"unicode/utf8"

	"github.com/gitstate/gitstate"
)

// Limits on names.
const (
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 1024
	// ReservedPrefix holds the server's own per-repo configuration. Keys under
	// it are written only by the server's own features (policy, secrets rules).
	ReservedPrefix = ".gitstate/"
	// MainBranch is the branch whose first-parent line is numbered.
	MainBranch = "main"
)

// ValidateKey reports whether key is a valid key: 1 to MaxKeyLen bytes of
// UTF-8, '/'-separated non-empty segments, none of them "." or "..", no
// control characters or backslash, no leading or trailing '/'. A segment
// that Git takes for ".git" is refused too, because git fsck refuses such a
// path in a tree (and git checkout refuses to write it): ".git" in any case,
// and the names NTFS and HFS+ read as ".git" (see isDotGit). The error is a
// *gitstate.Error with code invalid_key.
func ValidateKey(key string) error {
	if key == "" {
		return invalidKey(key, "key is empty")
	}
	if len(key) > MaxKeyLen {
		return invalidKey(key, "key is longer than 1024 bytes")
	}
	if !utf8.ValidString(key) {
		return invalidKey(key, "key is not valid UTF-8")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return invalidKey(key, "key contains a control character")
		}
		if r == '\\' {
			return invalidKey(key, "key contains a backslash")
		}
	}
	if key[0] == '/' || key[len(key)-1] == '/' {
		return invalidKey(key, "key starts or ends with '/'")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return invalidKey(key, "key has an empty segment")
		case seg == "." || seg == "..":
			return invalidKey(key, "key has a '.' or '..' segment")
		case isDotGit(seg):
			return invalidKey(key, "key has a '.git' segment, which Git refuses")
		case strings.EqualFold(seg, ".gitmodules"):
			// Git reads such a file as submodule configuration and git
			// fsck checks its content: it is not a place for a value.
			return invalidKey(key, "key has a '.gitmodules' segment, which Git reserves for submodules")
		}
	}
	return nil
}

// isDotGit reports whether Git (fsck's hasDotgit check) takes the tree entry
// name seg for ".git": ".git" in any case once the code points HFS+ ignores
// are removed, or ".git" or "git~1" (NTFS's short name) in any case followed
// only by dots and spaces, which NTFS drops, or by ':' (an NTFS stream).
func isDotGit(seg string) bool {
	if strings.EqualFold(strings.Map(dropHFSIgnorable, seg), ".git") {
		return true
	}
	var rest string
	switch {
	case len(seg) >= 4 && strings.EqualFold(seg[:4], ".git"):
		rest = seg[4:]
	case len(seg) >= 5 && strings.EqualFold(seg[:5], "git~1"):
		rest = seg[5:]
	default:
		return false
	}
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '.', ' ':
		case ':':
			return true
		default:
			return false
		}
	}
	return true
}

// dropHFSIgnorable drops the code points HFS+ ignores in file names (Git's
// list in utf8.c, next_hfs_char).
func dropHFSIgnorable(r rune) rune {
	switch {
	case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
		return -1
	}
	return r
}

// ValidatePrefix reports whether prefix can be a key prefix: empty, or a
// string that could begin a valid key. It may end with '/'; otherwise its
// last segment may be the start of a longer one (".git" begins ".github",
// "." begins ".env").
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	err := ValidateKey(prefix)
	if err == nil || ValidateKey(prefix+"x") == nil {
		// prefix is a key, or a valid key continues it: "x" never completes
		// a refused segment, and after a '/' it is a segment of its own.
		return nil
	}
	if k, dir := strings.CutSuffix(prefix, "/"); dir && k != "" {
		if kerr := ValidateKey(k); kerr != nil {
			return kerr // names what is wrong before the '/'
		}
		return invalidKey(prefix, "prefix is too long to begin a key")
	}
	return err
}

// IsReserved reports whether key lies under ReservedPrefix.
func IsReserved(key string) bool {
	return strings.HasPrefix(key, ReservedPrefix)
}

func invalidKey(key, msg string) error {
	// Quote the key so that odd bytes are visible, and bound its length.
	if len(key) > 80 {
		key = key[:80] + "..."
	}
	return gitstate.Errorf(gitstate.KindInvalid, "invalid_key", "%s: %q", msg, key)
}

// ValidateRepoName reports whether name is a valid repo name:
// [a-z0-9][a-z0-9-]{0,62}.
func ValidateRepoName(name string) error {
	if len(name) == 0 || len(name) > 63 {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_repo_name", "repo name must be 1 to 63 characters: %q", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0)
		if !ok {
			return gitstate.Errorf(gitstate.KindInvalid, "invalid_repo_name", "repo name must match [a-z0-9][a-z0-9-]{0,62}: %q", name)
		}
	}
	return nil
}
