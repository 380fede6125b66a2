package storage

import (
	"strings"
	"testing"
)

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

func TestRedactText(t *testing.T) {
	for _, tc := range []struct{ text, src, want string }{
		{"fatal: unable to access 'http://h:7/x.git?private_token=Secret77/': Failed to connect", "",
			"fatal: unable to access 'http://h:7/x.git?private_token=REDACTED': Failed to connect"},
		{"fatal: unable to access 'https://u:pw@h/x.git/': 403", "", "fatal: unable to access 'https://u:REDACTED@h/x.git/': 403"},
		{"fatal: unable to look up u:GitSecret99@127.0.0.1:7359 (port 9418)", "git://u:GitSecret99@127.0.0.1:7359/x.git",
			"fatal: unable to look up u:REDACTED@127.0.0.1:7359 (port 9418)"},
		{"remote said Secret77 twice: Secret77", "http://h/x.git?tok=Secret77", "remote said REDACTED twice: REDACTED"},
		// Too short to be looked for outside a URL.
		{"fatal: exit 1", "http://u:1@h/x.git", "fatal: exit 1"},
		{"fatal: repository '/srv/x.git' does not exist", "/srv/x.git", "fatal: repository '/srv/x.git' does not exist"},
	} {
		if got := RedactText(tc.text, tc.src); got != tc.want {
			t.Errorf("RedactText(%q, %q) =\n%q, want\n%q", tc.text, tc.src, got, tc.want)
		}
	}
}

func TestCheckSourceQuery(t *testing.T) {
	for _, tc := range []struct {
		src string
		ok  bool
	}{
		{"https://host/r.git", true},
		{"http://127.0.0.1:7359/x.git?private_token=QtokSecret77", false},
		{"https://host/r.git?", false},
		{"https://host/r.git#Secret", false},
		{"/srv/what?.git", true}, // a path may hold a '?'
		{"ssh://host/r.git", true},
	} {
		err := CheckSourceQuery(tc.src)
		if (err == nil) != tc.ok {
			t.Errorf("CheckSourceQuery(%q) = %v, want ok %v", tc.src, err, tc.ok)
		}
		if err != nil && (strings.Contains(err.Error(), "Secret")) {
			t.Errorf("CheckSourceQuery(%q) quotes the URL: %v", tc.src, err)
		}
	}
}
