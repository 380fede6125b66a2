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
// named ".git" (in any case) is refused too, because Git itself refuses such
// a path in a tree. The error is a *gitstate.Error with code invalid_key.
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
		case strings.EqualFold(seg, ".git"):
			return invalidKey(key, "key has a '.git' segment, which Git refuses")
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix can be a key prefix: empty, or a
// string that could begin a valid key (it may end with '/').
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	k := strings.TrimSuffix(prefix, "/")
	if k == "" {
		return invalidKey(prefix, "prefix is only '/'")
	}
	if err := ValidateKey(k); err != nil {
		return err
	}
	return nil
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
