package storage

import "testing"

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://host/r.git", "https://host/r.git"},
		{"https://user:pw@host/r.git", "https://user:REDACTED@host/r.git"},
		{"https://user@host/r.git", "https://user@host/r.git"},
		{"http://host/tgt.git?tok=abc", "http://host/tgt.git?tok=REDACTED"},
		{"https://gitlab.example/g/r.git?private_token=glpat-x&ref=main", "https://gitlab.example/g/r.git?private_token=REDACTED&ref=REDACTED"},
		{"https://u:p@host/r.git?a=b", "https://u:REDACTED@host/r.git?a=REDACTED"},
		{"/srv/git/r.git", "/srv/git/r.git"},
		{"git@host:r.git", "git@host:r.git"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
