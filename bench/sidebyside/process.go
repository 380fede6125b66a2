package sidebyside

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server run as a subprocess, so that its memory and CPU are
// its own and can be read from /proc.
type process struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
	log     *os.File
	lastRSS int64 // the peak RSS read before Stop
}

// startProcess runs name with args and env (added to the harness's own
// environment), its standard output and error appended to logPath.
func startProcess(name string, args, env []string, logPath string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	p := &process{cmd: cmd, done: make(chan struct{}), log: log}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// exited reports the exit status when the process has ended.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		if p.err == nil {
			return true, errors.New("exited")
		}
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits for the process to exit, killing it after
// timeout. It reads the process's peak RSS first (PeakRSS keeps answering
// with it).
func (p *process) Stop(timeout time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	if rss, err := peakRSS(p.PID()); err == nil {
		p.lastRSS = rss
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("pid %d did not stop within %v: killed", p.PID(), timeout)
	}
}

// PeakRSS returns the process's peak resident set size (VmHWM), in bytes:
// once stopped, as it was when Stop was called.
func (p *process) PeakRSS() (int64, error) {
	if done, _ := p.exited(); done {
		return p.lastRSS, nil
	}
	return peakRSS(p.PID())
}

// peakTracker keeps the largest peak RSS of the successive processes of
// one server.
type peakTracker struct{ peak int64 }

// retire records p's peak before p is replaced.
func (t *peakTracker) retire(p *process) {
	if p == nil {
		return
	}
	if rss, err := p.PeakRSS(); err == nil {
		t.peak = max(t.peak, rss)
	}
}

// current returns the largest peak of the retired processes and p.
func (t *peakTracker) current(p *process) (int64, error) {
	rss, err := p.PeakRSS()
	return max(t.peak, rss), err
}

// CPU returns the CPU time (user and system) the process has used.
func (p *process) CPU() (time.Duration, error) { return cpuTime(p.PID()) }

func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// selfCPU returns the CPU time the harness itself has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// copyDir copies the directory src to dst (which must not exist) with cp,
// keeping modes and times.
func copyDir(src, dst string) error {
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, bytes.TrimSpace(out))
	}
	return nil
}
