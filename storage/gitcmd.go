package storage

import (
	"context"
	"encoding/base64"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/gitstate/gitstate"
)

// GitEnv is how GitCommand runs the git CLI.
type GitEnv struct {
	// Dir is the repository (git -C).
	Dir string
	// Header is an extra HTTP header for remote operations (credentials,
	// "Authorization: Basic ..."). It goes to git through its environment
	// (GIT_CONFIG_*), never on a command line, where ps would show it.
	Header string
	// Config is more configuration, "key=value" each, given the same way.
	Config []string
	// Env is more environment, "NAME=value" each (GIT_PROTOCOL, say).
	Env []string
}

// AllowedProtocols are the transports git may use for imports, upstreams
// and fetches: not ext:: (which runs commands) nor any other.
const AllowedProtocols = "http:https:ssh:git:file"

// GitCommand returns a git command isolated from the machine's and the
// user's configuration: no prompts (a missing credential fails at once),
// no system or global config, only AllowedProtocols, ssh in batch mode,
// and the variables of env. Variables of the server's environment that
// steer git (GIT_DIR, GIT_INDEX_FILE...) are dropped.
func GitCommand(ctx context.Context, env GitEnv, args ...string) *exec.Cmd {
	full := args
	if env.Dir != "" {
		full = append([]string{"-C", env.Dir}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", full...)
	var vars []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "GIT_SSH") {
			continue
		}
		vars = append(vars, kv)
	}
	vars = append(vars,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ALLOW_PROTOCOL="+AllowedProtocols,
	)
	if os.Getenv("GIT_SSH_COMMAND") == "" && os.Getenv("GIT_SSH") == "" {
		vars = append(vars, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	vars = append(vars, env.Env...)
	cfg := slicesClip(env.Config)
	if env.Header != "" {
		cfg = append(cfg, "http.extraHeader="+env.Header)
	}
	if len(cfg) > 0 {
		vars = append(vars, "GIT_CONFIG_COUNT="+strconv.Itoa(len(cfg)))
		for i, kv := range cfg {
			k, v, _ := strings.Cut(kv, "=")
			n := strconv.Itoa(i)
			vars = append(vars, "GIT_CONFIG_KEY_"+n+"="+k, "GIT_CONFIG_VALUE_"+n+"="+v)
		}
	}
	cmd.Env = vars
	cmd.WaitDelay = 5e9 // 5s: do not hang on a child holding the pipes
	return cmd
}

func slicesClip(s []string) []string { return s[:len(s):len(s)] }

// SplitCredentials returns a Git URL without the password it may carry
// (https://user:token@host/...), and an HTTP Authorization header with
// that user and password ("" when there is none), so that the URL can be
// logged and stored in the clear.
func SplitCredentials(raw string) (clean, header string) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return raw, ""
	}
	pw, ok := u.User.Password()
	user := u.User.Username()
	u.User = nil
	if !ok {
		if user == "" {
			return u.String(), ""
		}
		// A token alone, as in https://<token>@host.
		return u.String(), BasicAuthHeader(user, "")
	}
	return u.String(), BasicAuthHeader(user, pw)
}

// BasicAuthHeader returns the HTTP header line of basic credentials.
func BasicAuthHeader(user, password string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// RedactURL returns a Git URL fit for logs: without its password, and
// with the values of its query string (where a credential may hide, as in
// GitLab's ?private_token=...) replaced by REDACTED.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.User == nil && u.RawQuery == "") {
		return raw
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// RedactText returns text (git's messages, which quote the URLs they
// fail on) fit to be stored, shown and logged: every URL in it through
// RedactURL, and the secrets of src (the password of its user, the values
// of its query), wherever else they appear (git:// quotes the host it
// cannot find, user and password included), replaced by REDACTED. Secrets
// shorter than 4 bytes are not looked for outside URLs.
func RedactText(text, src string) string {
	text = urlInText.ReplaceAllStringFunc(text, RedactURL)
	u, err := url.Parse(src)
	if err != nil {
		return text
	}
	var secrets []string
	if u.User != nil {
		pw, _ := u.User.Password()
		secrets = append(secrets, pw)
	}
	for _, vs := range u.Query() {
		secrets = append(secrets, vs...)
	}
	for _, v := range secrets {
		if len(v) >= 4 {
			text = strings.ReplaceAll(text, v, "REDACTED")
		}
	}
	return text
}

// urlInText matches a URL in a message, up to a space or a quote.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>]+`)

// CheckSourceQuery refuses an http(s) URL with a query string or a
// fragment, as an import source: the source is stored and shown, and a
// credential in its query (GitLab's ?private_token=...) would leak with
// it. The message does not quote the URL, lest it carry the credential on.
func CheckSourceQuery(src string) error {
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil
	}
	if u.RawQuery != "" || u.ForceQuery {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_source",
			"source must not have a query string: it is stored and shown as it is; give a credential as user:password@ in the URL, which is kept secret")
	}
	if u.Fragment != "" {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_source", "source must not have a fragment")
	}
	return nil
}

// ValidateSource checks a Git URL or local path given as an import source
// or an upstream: it must not look like an option, and its scheme, if it
// has one, must be an allowed transport.
func ValidateSource(src string) error {
	if src == "" {
		return invalidSource(src, "is empty")
	}
	if strings.HasPrefix(src, "-") || strings.ContainsAny(src, "\x00\n\r") {
		return invalidSource(src, "is not a URL or a path")
	}
	if strings.Contains(src, "::") {
		return invalidSource(src, "uses a remote helper; use http, https, ssh, git or file")
	}
	if i := strings.Index(src, "://"); i > 0 {
		scheme := src[:i]
		if !strings.Contains(":"+AllowedProtocols+":", ":"+scheme+":") {
			return invalidSource(src, "uses "+scheme+"; use http, https, ssh, git or file")
		}
	}
	return nil
}
