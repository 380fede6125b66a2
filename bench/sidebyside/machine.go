package sidebyside

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a run ran.
type Machine struct {
	CPU    string
	Cores  int
	Memory string
	Disk   string // the device under the work directory
	Kernel string
}

// Versions are the versions of everything measured.
type Versions struct {
	Go, Git, Etcd, Gitstate string
}

func readMachine(dir string) Machine {
	m := Machine{Cores: runtime.NumCPU(), CPU: "unknown", Memory: "unknown", Disk: "unknown", Kernel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.Memory = strconv.FormatFloat(float64(kb)/(1<<20), 'f', 1, 64) + " GiB"
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Disk = describeDisk(dir)
	return m
}

// describeDisk names the block device and file system under dir, and
// whether the kernel calls it rotational.
func describeDisk(dir string) string {
	out, err := exec.Command("findmnt", "-no", "SOURCE,FSTYPE", "-T", dir).Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return "unknown"
	}
	src, fs := f[0], f[1]
	dev := filepath.Base(src)
	// A partition's queue is its disk's.
	if link, err := filepath.EvalSymlinks("/sys/class/block/" + dev); err == nil {
		if _, err := os.Stat(filepath.Join(link, "partition")); err == nil {
			dev = filepath.Base(filepath.Dir(link))
		}
	}
	desc := src + " (" + fs + ")"
	if strings.HasPrefix(dev, "vd") {
		desc += ", virtio block device"
	}
	if b, err := os.ReadFile("/sys/block/" + dev + "/queue/rotational"); err == nil {
		if strings.TrimSpace(string(b)) == "1" {
			desc += ", reported rotational"
		} else {
			desc += ", reported non-rotational (SSD)"
		}
	}
	return desc
}

func readVersions(ctx context.Context, src string) Versions {
	v := Versions{Go: runtime.Version(), Git: "unknown", Etcd: "unknown", Gitstate: "unknown"}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		v.Go = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	if out, err := exec.CommandContext(ctx, "git", "--version").Output(); err == nil {
		v.Git = strings.TrimPrefix(strings.TrimSpace(string(out)), "git version ")
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "go.etcd.io/etcd/server/v3" {
				v.Etcd = d.Version
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", src, "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		v.Gitstate = strings.TrimSpace(string(out))
		// The report this harness writes does not count: a run writes it
		// over whatever an earlier one left.
		if st, err := exec.CommandContext(ctx, "git", "-C", src, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.md").Output(); err == nil && len(st) > 0 {
			v.Gitstate += " (with uncommitted changes)"
		}
	}
	return v
}

// loadAvg returns the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// sampleLoad appends the 1-minute load average to res every 10 seconds
// until ctx is done.
func sampleLoad(ctx context.Context, res *Results) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		res.mu.Lock()
		res.LoadAvg = append(res.LoadAvg, loadAvg())
		res.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// FindSource returns the gitstate checkout that dir is in (or under):
// the nearest directory upwards whose go.mod declares
// github.com/gitstate/gitstate.
func FindSource(dir string) (string, bool) {
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module github.com/gitstate/gitstate" {
				return d, true
			}
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}
