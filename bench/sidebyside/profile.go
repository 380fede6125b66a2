package sidebyside

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// pider is a System whose server is one process.
type pider interface {
	PID() int
}

func (g *gitstateSystem) PID() int { return g.srv.PID() }
func (e *etcdSystem) PID() int     { return e.srv.PID() }

// profile returns, when Config.Profile is set and s is a server, a hook for
// closedLoop that records the server with `perf record -g` during the
// window, then writes a text report beside the data:
// <system>-<id>-<round>.perf.data and .txt.
func (r *runner) profile(s System, id string) func() func() {
	p, ok := s.(pider)
	if r.cfg.Profile == "" || !ok {
		return nil
	}
	return func() func() {
		if err := os.MkdirAll(r.cfg.Profile, 0o755); err != nil {
			r.logf("  profile: %v", err)
			return func() {}
		}
		data := filepath.Join(r.cfg.Profile, fmt.Sprintf("%s-%s-%d.perf.data", s.Name(), id, r.round+1))
		cmd := exec.Command("perf", "record", "--quiet", "-F", "499", "-g", "-p", strconv.Itoa(p.PID()), "-o", data)
		if err := cmd.Start(); err != nil {
			r.logf("  profile: %v", err)
			return func() {}
		}
		return func() {
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait() // it exits by the signal

			txt := data[:len(data)-len(".perf.data")] + ".txt"
			out, err := exec.Command("perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "0.5",
				"--sort", "symbol", "-g", "none").Output()
			if err != nil {
				r.logf("  profile: perf report: %v", err)
				return
			}
			os.WriteFile(txt, out, 0o644)
			r.logf("  profile: %s", txt)
		}
	}
}
