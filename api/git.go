package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
)

// Git's smart HTTP protocol (gitprotocol-http(5)) at /git/{repo}.git:
//
//   - Fetches (clone, fetch, ls-remote, shallow and partial clones) run the
//     system's git upload-pack in stateless-RPC mode over the repo's bare
//     repository, behind this server's authentication, once the Git files
//     are current (FSBackend.Flush). Git's own negotiation, shallow and
//     filter code serve every client version.
//   - Pushes are this server's own receive-pack: the commands and the pack
//     are read here, and each ref moves through storage.Advance, the same
//     committer as the API's writes, with the same checks (see push.go).
//     Git's receive-pack would write refs and objects behind the journal,
//     the index and the policy.

// gitBackend is what a repo's backend needs to be served over Git: its
// bare repository on disk, current.
type gitBackend interface {
	Dir() string
	Flush() error
}

// gitProtocol is what Git-Protocol headers may hold (version=2, and the
// like): passed to upload-pack as GIT_PROTOCOL.
var gitProtocol = regexp.MustCompile(`^[A-Za-z0-9=:._-]{1,128}$`)

// gitRepo returns the repo of a Git route after checking the caller's
// scope. Git carries every key, so a token limited to key prefixes is
// refused.
func (s *Server) gitRepo(r *http.Request, scopes ...Scope) (*storage.Repo, gitBackend, error) {
	name := strings.TrimSuffix(pathVar(r, "repo"), ".git")
	if info := infoOf(r); info != nil {
		info.repo = name
	}
	if err := storage.ValidateRepoName(name); err != nil {
		return nil, nil, gitstate.Errorf(gitstate.KindNotFound, "repo_not_found", "no repo %q", name)
	}
	var err error
	for _, sc := range scopes {
		if err = authorize(r, sc, name); err == nil {
			break
		}
	}
	if p := PrincipalOf(r); err != nil && p != nil && len(scopes) > 1 && !slices.ContainsFunc(scopes, p.HasScope) {
		// Say what would do, not only the last scope tried.
		return nil, nil, forbidden("scope:"+string(scopes[0]), "token lacks the scope a push needs: %s", pushScopes(scopes))
	}
	if err != nil {
		return nil, nil, err
	}
	if p := PrincipalOf(r); !p.Unrestricted() {
		return nil, nil, forbidden("prefix:*", "a token limited to key prefixes (%s) cannot use Git, which carries every key", strings.Join(p.Prefixes, ", "))
	}
	repo, err := s.store.Repo(name)
	if err != nil {
		return nil, nil, err
	}
	gb, ok := repo.Backend().(gitBackend)
	if !ok {
		return nil, nil, gitstate.Errorf(gitstate.KindUnavailable, "git_unavailable", "repo %s is not kept in a local Git repository", name)
	}
	return repo, gb, nil
}

// pushScopes says what each of scopes lets a push do.
func pushScopes(scopes []Scope) string {
	var b strings.Builder
	for i, sc := range scopes {
		if i > 0 {
			b.WriteString(", or ")
		}
		fmt.Fprintf(&b, "%q", sc)
		switch sc {
		case ScopeWrite:
			b.WriteString(" to push to main")
		case ScopeTxn:
			b.WriteString(" to push to a transaction's branch (txn/<id>)")
		}
	}
	return b.String()
}

// gitInfoRefs serves GET /git/{repo}.git/info/refs?service=...: the ref
// advertisement that starts a fetch or a push.
func (s *Server) gitInfoRefs(w http.ResponseWriter, r *http.Request) {
	switch svc := r.URL.Query().Get("service"); svc {
	case "git-upload-pack":
		repo, gb, err := s.gitRepo(r, ScopeRead)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.uploadPack(w, r, repo, gb, true)
	case "git-receive-pack":
		repo, _, err := s.gitRepo(r, ScopeWrite, ScopeTxn)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.advertisePush(w, repo)
	case "":
		s.writeError(w, r, gitstate.Errorf(gitstate.KindInvalid, "invalid_request",
			"gitstate speaks Git's smart HTTP protocol only (git 1.6.6 or later)"))
	default:
		s.writeError(w, r, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "unknown service %q", svc))
	}
}

// gitReadTimeout bounds the reading of a Git request's body: a push of a
// large history over a slow link outlasts the server's ReadTimeout, meant
// for JSON requests.
const gitReadTimeout = 30 * time.Minute

// extendReadDeadline gives a Git request gitReadTimeout to send its body.
func extendReadDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(gitReadTimeout))
}

// gitUploadPack serves POST /git/{repo}.git/git-upload-pack.
func (s *Server) gitUploadPack(w http.ResponseWriter, r *http.Request) {
	extendReadDeadline(w)
	repo, gb, err := s.gitRepo(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.uploadPack(w, r, repo, gb, false)
}

func noCache(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "Fri, 01 Jan 1980 00:00:00 GMT")
}

// uploadPack runs git upload-pack over the repo, for the advertisement
// (advertise) or for a request.
func (s *Server) uploadPack(w http.ResponseWriter, r *http.Request, repo *storage.Repo, gb gitBackend, advertise bool) {
	if _, err := exec.LookPath("git"); err != nil {
		s.writeError(w, r, gitstate.Errorf(gitstate.KindUnavailable, "git_unavailable", "the server has no git executable: it cannot serve fetches"))
		return
	}
	// Git reads the repository's files: make them hold every write
	// acknowledged so far.
	if err := gb.Flush(); err != nil {
		s.writeError(w, r, err)
		return
	}
	env := storage.GitEnv{Config: []string{
		"uploadpack.allowFilter=true",        // partial clones (--filter=blob:none)
		"uploadpack.allowAnySHA1InWant=true", // and their later fetches of blobs by id
		"uploadpack.hideRefs=refs/gitstate/", // the server's own records
		"safe.directory=*",
		"core.bigFileThreshold=16m",
	}}
	v2 := false
	if gp := r.Header.Get("Git-Protocol"); gp != "" && gitProtocol.MatchString(gp) {
		env.Env = append(env.Env, "GIT_PROTOCOL="+gp)
		v2 = strings.Contains(gp, "version=2")
	}
	args := []string{"upload-pack", "--stateless-rpc"}
	var body io.Reader = http.NoBody
	if advertise {
		args = append(args, "--advertise-refs")
	} else {
		var err error
		if body, err = requestBody(r, s.opts.MaxBodyBytes); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	args = append(args, gb.Dir())
	cmd := storage.GitCommand(r.Context(), env, args...)
	cmd.Stdin = body
	var stderr bytes.Buffer
	cmd.Stderr = &limitWriter{w: &stderr, n: 16 << 10}
	out := &flushWriter{w: w, rc: http.NewResponseController(w)}
	if advertise {
		w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
		noCache(w)
		if !v2 {
			// The stateless advertisement starts with the service line
			// (protocol v2 answers with its capabilities alone).
			out.pending = appendFlush(appendPkt(nil, "# service=git-upload-pack\n"))
		}
	} else {
		w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
		noCache(w)
	}
	cmd.Stdout = out
	err := cmd.Run()
	if err != nil && !out.wrote && r.Context().Err() == nil {
		s.log.Error("git upload-pack failed", "repo", repo.Name(), "err", err, "stderr", strings.TrimSpace(stderr.String()), "request_id", requestID(r))
		s.writeError(w, r, fmt.Errorf("upload-pack: %w", err))
		return
	}
	if err != nil && r.Context().Err() == nil {
		s.log.Warn("git upload-pack ended with an error", "repo", repo.Name(), "err", err, "stderr", strings.TrimSpace(stderr.String()), "request_id", requestID(r))
	}
	if !out.wrote {
		out.Write(nil)
	}
}

// flushWriter sends what it is given at once (progress, side-band data),
// after anything pending.
type flushWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	pending []byte
	wrote   bool
}

func (f *flushWriter) Write(b []byte) (int, error) {
	if !f.wrote {
		f.wrote = true
		if len(f.pending) > 0 {
			if _, err := f.w.Write(f.pending); err != nil {
				return 0, err
			}
		}
	}
	if len(b) == 0 {
		return 0, nil
	}
	n, err := f.w.Write(b)
	if err == nil {
		_ = f.rc.Flush()
	}
	return n, err
}

// limitWriter keeps the first n bytes written to it.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}

// requestBody returns a Git request's body, gunzipped when the client
// compressed it, bounded to limit bytes once decompressed.
func requestBody(r *http.Request, limit int64) (io.Reader, error) {
	var body io.Reader = r.Body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, badRequest("gzip body: %v", err)
		}
		body = zr
	default:
		return nil, badRequest("unsupported Content-Encoding %q", enc)
	}
	return &boundedReader{r: body, left: limit}, nil
}

// boundedReader fails once more than its limit has been read.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

var errBodyTooLarge = gitstate.Errorf(gitstate.KindTooLarge, "body_too_large", "request body is over the limit")

// pushCapabilities are what this receive-pack offers. Not delete-refs
// (branches are not deleted by push), nor atomic or push-options.
const pushCapabilities = "report-status side-band-64k ofs-delta quiet object-format=sha1 agent=gitstate"

// advertisePush writes the receive-pack advertisement: the branches (main
// and the open transactions' txn/<id>), as the backend has them now.
func (s *Server) advertisePush(w http.ResponseWriter, repo *storage.Repo) {
	refs := repo.Backend().Refs("refs/heads/")
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	slices.Sort(names)
	b := appendFlush(appendPkt(nil, "# service=git-receive-pack\n"))
	if len(names) == 0 {
		b = appendPkt(b, storage.ZeroHash.String()+" capabilities^{}\x00"+pushCapabilities+"\n")
	}
	for i, n := range names {
		line := refs[n].String() + " " + n
		if i == 0 {
			line += "\x00" + pushCapabilities
		}
		b = appendPkt(b, line+"\n")
	}
	b = appendFlush(b)
	w.Header().Set("Content-Type", "application/x-git-receive-pack-advertisement")
	noCache(w)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// gitReceivePack serves POST /git/{repo}.git/git-receive-pack: a push.
func (s *Server) gitReceivePack(w http.ResponseWriter, r *http.Request) {
	extendReadDeadline(w)
	repo, _, err := s.gitRepo(r, ScopeWrite, ScopeTxn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := requestBody(r, s.opts.MaxPushBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	br := bufio.NewReaderSize(body, 64<<10)
	cmds, caps, err := readPushCommands(br)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := s.push(r, repo, br, cmds)
	sb := &sideband{on: slices.Contains(caps, "side-band-64k")}
	// Messages are not progress: "quiet" does not silence them.
	for _, m := range out.messages {
		sb.message(m)
	}
	var report []byte
	if slices.Contains(caps, "report-status") {
		report = appendPkt(report, "unpack "+out.unpack+"\n")
		for _, c := range out.cmds {
			if c.err == "" {
				report = appendPkt(report, "ok "+c.ref+"\n")
			} else {
				report = appendPkt(report, "ng "+c.ref+" "+c.err+"\n")
			}
		}
		report = appendFlush(report)
		sb.data(report)
	}
	if info := infoOf(r); info != nil {
		info.keys, info.revision, info.outcome = out.keys, out.revision, out.status
	}
	w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	noCache(w)
	w.WriteHeader(http.StatusOK)
	w.Write(sb.finish())
}

// pushCommand is one ref update of a push.
type pushCommand struct {
	old, new storage.Hash
	ref      string
	err      string // why it was refused ("" when applied)
}

// readPushCommands reads the commands of a push, up to the flush that ends
// them, and the capabilities the client asked for.
func readPushCommands(br *bufio.Reader) ([]*pushCommand, []string, error) {
	var cmds []*pushCommand
	var caps []string
	for {
		line, err := readPkt(br)
		if errors.Is(err, errFlush) {
			break
		}
		if err != nil {
			return nil, nil, badRequest("push commands: %v", err)
		}
		s := strings.TrimSuffix(string(line), "\n")
		if len(cmds) == 0 {
			var c string
			s, c, _ = strings.Cut(s, "\x00")
			caps = strings.Fields(c)
		}
		if strings.HasPrefix(s, "shallow ") {
			continue // a shallow client: the pack's connectivity is checked anyway
		}
		f := strings.Fields(s)
		if len(f) != 3 {
			return nil, nil, badRequest("malformed push command %q", s)
		}
		oldH, ok1 := storage.ParseHash(f[0])
		newH, ok2 := storage.ParseHash(f[1])
		if !ok1 || !ok2 {
			return nil, nil, badRequest("malformed push command %q", s)
		}
		cmds = append(cmds, &pushCommand{old: oldH, new: newH, ref: f[2]})
		if len(cmds) > 1000 {
			return nil, nil, badRequest("too many refs in one push")
		}
	}
	return cmds, caps, nil
}
