package sidebyside

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report writes the Markdown report to cfg.Out, or to cfg.Log.
func (r *runner) report() error {
	var b strings.Builder
	r.res.WriteMarkdown(&b)
	if r.cfg.Out == "" {
		if r.cfg.Log != nil {
			io.WriteString(r.cfg.Log, "\n"+b.String())
		}
		return nil
	}
	r.logf("writing %s", r.cfg.Out)
	return os.WriteFile(r.cfg.Out, []byte(b.String()), 0o644)
}

// WriteMarkdown writes the report: the machine, the versions, where each
// target stands, every figure with its ratios, and how it was measured.
func (res *Results) WriteMarkdown(w io.Writer) {
	c := res.Config
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# gitstate side by side with etcd and plain Git\n\n")
	if c.Quick {
		p("**A smoke run (`-quick`): small datasets, one round, short windows. Not for comparison.**\n\n")
	}
	p("Written by `%s` (%s), started %s UTC, took %v. Each figure is the median over %d %s; ",
		c.Command, "bench/cmd/sidebyside", res.Started.UTC().Format("2006-01-02 15:04"), res.Elapsed.Round(time.Second), c.Rounds, plural(c.Rounds, "round", "rounds"))
	p("each round runs every workload on every system in turn, the system going first rotating from round to round, ")
	p("so that the machine's noise falls on all alike. All servers run on this machine, on loopback, with the harness (the clients) sharing its cores.\n\n")

	p("## Machine\n\n| | |\n|---|---|\n")
	p("| CPU | %s, %d cores |\n| Memory | %s |\n| Disk | %s |\n| Kernel | %s |\n", res.Machine.CPU, res.Machine.Cores, res.Machine.Memory, res.Machine.Disk, res.Machine.Kernel)
	if la := res.LoadAvg; len(la) > 0 {
		var sum float64
		for _, v := range la {
			sum += v
		}
		p("| Load average (1 min) during the run | mean %.1f, min %.1f, max %.1f (%d samples, every 10 s; other work was running on the machine) |\n",
			sum/float64(len(la)), slices.Min(la), slices.Max(la), len(la))
	}
	p("\n## Versions\n\n| | |\n|---|---|\n| Go | %s |\n| git | %s |\n| etcd | %s (`go.etcd.io/etcd/server/v3/embed`) |\n| gitstate | %s |\n\n",
		res.Versions.Go, res.Versions.Git, res.Versions.Etcd, res.Versions.Gitstate)

	res.writeTargets(w)
	res.writeFigures(w)
	res.writeWatchScale(w)
	res.writeMethod(w)
	res.writeRounds(w)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (res *Results) ratio(id, peer string) (float64, bool) {
	a, ok1 := res.Median(id, "gitstate")
	b, ok2 := res.Median(id, peer)
	if !ok1 || !ok2 || b == 0 {
		return 0, false
	}
	return a / b, true
}

// roundRatios returns gitstate's value over peer's for each round.
func (res *Results) roundRatios(id, peer string) string {
	a, b := res.Values(id, "gitstate"), res.Values(id, peer)
	var f []string
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			f = append(f, fmt.Sprintf("%.2f", a[i]/b[i]))
		}
	}
	if len(f) < 2 {
		return ""
	}
	return " (rounds: " + strings.Join(f, ", ") + ")"
}

// roundValues returns gitstate's value of id in each round.
func (res *Results) roundValues(id, unit string) string {
	v := res.Values(id, "gitstate")
	if len(v) < 2 {
		return ""
	}
	f := make([]string, len(v))
	for i, x := range v {
		f[i] = format(x, unit)
	}
	return " (rounds: " + strings.Join(f, ", ") + ")"
}

func (res *Results) writeTargets(w io.Writer) {
	c := res.Config
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## The targets of issue 8\n\nEach verdict is on the median over the rounds; the rounds' own figures follow it.\n\n| target | measured | |\n|---|---|---|\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	if r, ok := res.ratio("get.ops", "etcd"); ok {
		v := verdict(r >= 1.0)
		if r >= 1.0 && r < 1.3 {
			v += " (the 1.3× aim is not)"
		}
		p("| GET at head, %d clients: ≥ 1.0× etcd's throughput (aim 1.3×) | %.2f×%s | %s |\n", c.Clients, r, res.roundRatios("get.ops", "etcd"), v)
	}
	if r, ok := res.ratio("putN.ops", "etcd"); ok {
		p("| PUT, %d writers, each PUT its own durable commit: ≥ 1.0× etcd's throughput | %.2f×%s | %s |\n", c.Clients, r, res.roundRatios("putN.ops", "etcd"), verdict(r >= 1.0))
	}
	if r, ok := res.ratio("put1.p50", "etcd"); ok {
		p("| PUT, 1 writer: p50 within 1.5× etcd's | %.2f×%s | %s |\n", r, res.roundRatios("put1.p50", "etcd"), verdict(r <= 1.5))
	}
	if p99, ok := res.Median("watch.p99", "gitstate"); ok {
		var missing float64
		for _, v := range res.Values("watch.missing", "gitstate") {
			missing += v
		}
		p("| Watch, %d watchers: p99 delivery ≤ 100 ms, none missed | p99 %s ms%s, %.0f missed in %d %s | %s |\n",
			c.Watchers, format(p99, "ms"), res.roundValues("watch.p99", "ms"), missing, c.Rounds, plural(c.Rounds, "round", "rounds"), verdict(p99 <= 100 && missing == 0))
	}
	big, small := fmt.Sprintf("txn.%d.pc.p50", c.Big.Keys), fmt.Sprintf("txn.%d.pc.p50", c.Small.Keys)
	if b, ok := res.Median(big, "gitstate"); ok {
		p("| 10-key transaction on %d keys: preview + commit ≤ 20 ms (p50) | %s ms%s | %s |\n", c.Big.Keys, format(b, "ms"), res.roundValues(big, "ms"), verdict(b <= 20))
		if s, ok := res.Median(small, "gitstate"); ok && s > 0 {
			p("| … and within 1.5× of the %d-key case | %.1f ms vs %.1f ms: %.2f× | %s |\n", c.Small.Keys, b, s, b/s, verdict(b/s <= 1.5))
		}
	}
	if cold, ok := res.Median("start.cold", "gitstate"); ok {
		p("| Cold start: index rebuild for %d keys in %d commits, proportional to history | %s s%s, %.0f commits of history/s; warm start %s s | a figure, no target |\n",
			c.Big.Keys, c.Big.Commits, format(cold, "s"), res.roundValues("start.cold", "s"), float64(c.Big.Commits)/cold, format(first(res.Median("start.warm", "gitstate")), "s"))
	}
	p("\n")
}

func first(v float64, _ bool) float64 { return v }

func (res *Results) writeFigures(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	peers := slices.DeleteFunc(slices.Clone(res.Systems), func(s string) bool { return s == "gitstate" })
	hasGitstate := slices.Contains(res.Systems, "gitstate")
	p("## Figures\n\nMedians over %d %s. The ratios are gitstate's figure over the peer's: above 1 is better for a throughput, below 1 for a latency, a time or a size.\n\n",
		res.Config.Rounds, plural(res.Config.Rounds, "round", "rounds"))
	p("| figure | unit |")
	for _, s := range res.Systems {
		p(" %s |", s)
	}
	if hasGitstate {
		for _, s := range peers {
			p(" gitstate/%s |", s)
		}
	}
	p("\n|---|---|%s", strings.Repeat("--:|", len(res.Systems)))
	if hasGitstate {
		p("%s", strings.Repeat("--:|", len(peers)))
	}
	p("\n")
	for _, m := range res.Metrics() {
		p("| %s | %s |", m.Title, m.Unit)
		for _, s := range res.Systems {
			if v, ok := res.Median(m.ID, s); ok {
				p(" %s |", format(v, m.Unit))
			} else if n := res.noteOf(m.ID, s); n != "" {
				p(" %s |", n)
			} else {
				p(" — |")
			}
		}
		if hasGitstate {
			for _, s := range peers {
				if r, ok := res.ratio(m.ID, s); ok && !strings.HasPrefix(m.ID, "watch.missing") && !strings.HasPrefix(m.ID, "watch.commits") {
					p(" %s× |", formatRatio(r))
				} else {
					p(" |")
				}
			}
		}
		p("\n")
	}
	if g, ok := res.Median("get.ops", "gitstate"); ok {
		if b, ok := res.Median("getbatch.ops", "git"); ok && b > 0 {
			p("\nGitstate's GET throughput over git's through long-lived `git cat-file --batch` processes: %.2f×.\n", g/b)
		}
	}
	p("\n")
}

// formatRatio writes r with two decimals, or two significant digits when
// it is below 0.1.
func formatRatio(r float64) string {
	switch {
	case r >= 100:
		return strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 0.1:
		return strconv.FormatFloat(r, 'f', 2, 64)
	default:
		return strconv.FormatFloat(r, 'g', 2, 64)
	}
}

// format writes v in unit with the precision that suits it.
func format(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case unit == "ms" || unit == "s":
		switch {
		case v >= 100:
			return strconv.FormatFloat(v, 'f', 0, 64)
		case v >= 10:
			return strconv.FormatFloat(v, 'f', 1, 64)
		case v >= 1:
			return strconv.FormatFloat(v, 'f', 2, 64)
		default:
			return strconv.FormatFloat(v, 'f', 3, 64)
		}
	case unit == "% of a core":
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return thousands(int64(math.Round(v)))
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func (res *Results) writeWatchScale(w io.Writer) {
	if len(res.WatchScale) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Larger watch fan-outs (once, after the rounds)\n\n")
	p("| system | watchers | opened | commits | p50 ms | p99 ms | max ms | p99 ms from the request | missing | fewest to one watcher | harness CPU | server CPU | |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, run := range res.WatchScale {
		if run.Err != "" {
			p("| %s | %d | %d | | | | | | | | | | %s |\n", run.System, run.Watchers, run.Opened, strings.ReplaceAll(run.Err, "|", "/"))
			continue
		}
		p("| %s | %d | %d | %d | %s | %s | %s | %s | %d | %d | %.0f%% | %.0f%% | |\n", run.System, run.Watchers, run.Opened, run.Commits,
			format(ms(run.P50), "ms"), format(ms(run.P99), "ms"), format(ms(run.Max), "ms"), format(ms(run.SendP99), "ms"), run.Missing, run.MinPerWatcher,
			100*run.ClientCPU.Seconds()/res.Config.WatchFor.Seconds(), 100*run.ServerCPU.Seconds()/res.Config.WatchFor.Seconds())
	}
	p("\nCPU is in percent of one core over the %v of commits; the harness's 1 to 10 thousand stream readers share the machine's %d cores with the server.\n\n", res.Config.WatchFor, res.Machine.Cores)
}

func (res *Results) writeMethod(w io.Writer) {
	c := res.Config
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## How each system is run and driven\n\n")
	p("- **Datasets.** %d keys in %d commits of %d keys (the big dataset: GET, PUT, list, watch, the first transaction, the cold start) and %d keys in %d commits (the second transaction), laid out as a GitOps repository: `apps/app<NNN>/env<N>/res<NNN>.yaml`, 100 keys per directory, values ~500-byte YAML documents. ",
		c.Big.Keys, c.Big.Commits, c.Big.perCommit(), c.Small.Keys, c.Small.Commits)
	p("PUTs write ~250-byte values, each writer to its own small directories (`apps/putWW/envN/resNNN.yaml`), every value new, so that every PUT is a commit (a revision).\n")
	p("- **gitstate**: the real binary, `go build ./cmd/gitstate` from this checkout, run as `gitstate serve --data <tmp> --listen 127.0.0.1:<port> --token-rate 0 --max-streams-per-token 0` with `GITSTATE_ADMIN_TOKEN` set: every request carries that bearer token; ")
	p("`--token-rate 0` turns off the per-token rate limit (1,000 requests/s by default) and `--max-streams-per-token 0` the limit of 100 watch streams per token, which would otherwise throttle a benchmark that uses one token for every client. The audit log is on, as in production: every write's line is durable before the answer (a PUT's rides in its commit's journal record, synced with it). ")
	p("Clients speak HTTP/1.1 with keep-alive, one connection per client. GET: `GET /v1/repos/default/kv/{key}`; PUT: `PUT …/kv/{key}` (acknowledged once durable); list: `GET …/kv?prefix=apps/app000/&limit=10000` (`&values=true` with values); ")
	p("transaction: `POST …/txns`, `POST …/txns/{id}/commits` (one batch of 10 puts), preview = `GET …/txns/{id}` + `GET …/txns/{id}/diff?against=head`, `POST …/txns/{id}/commit`; watch: `GET …/watch` (SSE, the whole repo), one connection per watcher, read by a lean reader (bufio lines, the event id parsed, a timestamp stored).\n")
	p("- **etcd**: `go.etcd.io/etcd/server/v3/embed` %s with its defaults (every write fsynced before it is acknowledged; `--quota-backend-bytes` 8 GiB so that no run hits the quota), run in its own process (the benchmark binary re-executed as a server) so that its RSS and CPU are its own. ", res.Versions.Etcd)
	p("Driven with `go.etcd.io/etcd/client/v3`, one client (one gRPC connection) per worker and per watcher. GET: serializable `Get`; PUT: `Put`; list: serializable `Get` with `WithPrefix` (`WithKeysOnly` without values); ")
	p("- **etcd-shared** (when run): the same etcd, driven with one client shared by all the workers (clientv3 multiplexes their requests over one HTTP/2 connection, as a single process using etcd would); watchers keep one client each. The targets are against **etcd**: 64 clients stand for 64 independent agents (CI jobs, reconcilers), each with its own connection, as gitstate's clients have theirs.\n")
	p("- **etcd (both)**: transaction: one `Txn` of 10 puts, the closest etcd has (no preview: etcd cannot show a pending change); the big dataset is loaded as %d `Txn`s of %d puts, so that it has as many revisions as gitstate has commits. There is no second repository in etcd: the small-dataset transaction is n/a. Watch: `Watch` of the whole keyspace from the next revision.\n",
		c.Big.Commits, c.Big.perCommit())
	p("- **git**: the git CLI on a repository with a work tree, configured `core.fsync=objects,reference`, `core.fsyncMethod=fsync` (a commit's objects and its ref are fsynced before `git commit` exits; git 2.39 accepts both keys: an unknown component is warned about, these are not), and `gc.auto=0` so that background gc does not run during the other systems' measurements. ")
	p("Loaded with `git fast-import` (the same commits) and `git reset --hard`. GET: `git show main:<key>`, one process per read as a script would; also, as a second row, one long-lived `git cat-file --batch` per client. PUT: write the file, `git add -- <key>`, `git commit -q -m …`; one work tree allows one commit at a time (`index.lock`), so concurrent writers take turns, as `flock` would make scripts do. ")
	p("List: `git ls-tree -r main -- apps/app000/` (names and blob ids; no values). Transaction: write 10 files, `git add`, preview `git diff --cached --name-status`, `git commit`. Git has no watch and no server to start: n/a. Its CPU is the git commands' (from their rusage), its \"peak RSS\" the largest of one git command.\n")
	p("- **Measurements.** GET and PUT are closed loops: each client sends its next request as soon as it has the answer, %v of warm-up, then a %v window; only the requests started and finished in the window count. ", c.Warmup, c.Duration)
	p("Before each system's turn at a workload the harness writes the machine's dirty pages back (`sync`) and waits (up to %v) until the servers are quiet (together under 5%% of a core over 200 ms), so that the background work one turn leaves (etcd's backend commits and snapshots, gitstate's flushes, pack merges and index compactions) does not fall into the next system's window (nor the kernel's writeback of what anything left unsynced, 30 s later). ", c.Settle)
	p("List and transactions run one at a time for the same time. Server CPU per op is the server process's CPU time (from /proc) over the window divided by the ops. ")
	p("Watch: %d watchers are opened on the big dataset, then one writer commits a change every %v for %v (a ticker: a slow commit skips ticks); the delay of each (watcher, revision) is from the moment the writer has the commit's acknowledgement to the moment that watcher's reader reads the event; an event read before the writer saw its acknowledgement counts as 0 (a second figure measures from the moment the writer sent the request, which includes the commit itself). Watchers get %v after the last commit; anything not received then is missing. ",
		c.Watchers, c.WatchEvery, c.WatchFor, c.WatchGrace)
	p("Cold start: after loading the big dataset, each server was stopped and its data directory copied; every round a second server starts on the copy — gitstate with `<data>/index` deleted, so that it rebuilds the index from Git before it serves — and is timed from the process's start until a GET at head is answered (gitstate: `/readyz`, then the GET); then it is stopped and started again as it is (warm). ")
	p("Peak RSS is the server process's VmHWM from /proc.\n\n")
}

func (res *Results) writeRounds(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	if res.Config.Rounds < 2 {
		return
	}
	p("## Every round\n\n| figure | system | values |\n|---|---|---|\n")
	for _, m := range res.Metrics() {
		for _, s := range res.Systems {
			v := res.Values(m.ID, s)
			if len(v) < 2 {
				continue
			}
			f := make([]string, len(v))
			for i, x := range v {
				f[i] = format(x, m.Unit)
			}
			p("| %s | %s | %s |\n", m.Title, s, strings.Join(f, ", "))
		}
	}
	p("\n")
}
