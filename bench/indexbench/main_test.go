package indexbench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// rootDir holds every store the benchmarks create; TestMain removes it.
var rootDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "indexbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rootDir = dir
	code := m.Run()
	if err := os.RemoveAll(rootDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// memSample is the process's memory at one moment, after a full GC that
// returned free pages to the OS.
type memSample struct {
	heapInuse int64 // Go heap spans in use (runtime.MemStats.HeapInuse)
	rssAnon   int64 // anonymous resident memory, including C allocations; -1 if unknown
}

func sampleMem() memSample {
	debug.FreeOSMemory() // forces a GC, then returns free memory to the OS
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heapInuse: int64(ms.HeapInuse), rssAnon: rssAnon()}
}

// rssAnon reads RssAnon from /proc/self/status, in bytes, or returns -1.
// It matters for pebble, whose block cache and memtables are allocated with
// C malloc and so are not part of the Go heap.
func rssAnon() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) == 3 && string(fields[0]) == "RssAnon:" && string(fields[2]) == "kB" {
			kb, err := strconv.ParseInt(string(fields[1]), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// diskUsage returns the bytes allocated on disk to the files under dir (not
// their apparent size, which for preallocated or sparse files is larger): in
// all, and in table and value-log files (.sst, .vlog), which leaves out logs
// and metadata.
func diskUsage(dir string) (total, tables int64, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n = st.Blocks * 512
		}
		total += n
		if ext := filepath.Ext(path); ext == ".sst" || ext == ".vlog" {
			tables += n
		}
		return nil
	})
	return total, tables, err
}

// copyDir copies the regular files and directories under src to dst. It
// syncs each file, so that writing back the copy does not stall a later
// benchmark's fsync.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("copyDir: %s is not a regular file", path)
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// cpuClock returns the CPU time, user plus system, used so far by the whole
// process, including the stores' background goroutines.
func cpuClock() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter adds up the process's CPU time over the timed parts of a
// benchmark. Reported as cpu-ns/op, it also charges background work (flushes,
// compactions) to the operations, and unlike ns/op it barely moves when other
// processes compete for the machine's cores.
type cpuMeter struct {
	total, since time.Duration
}

// startCPU returns a running cpuMeter.
func startCPU() *cpuMeter { return &cpuMeter{since: cpuClock()} }

func (m *cpuMeter) stop() { m.total += cpuClock() - m.since }

func (m *cpuMeter) start() { m.since = cpuClock() }

// report stops m and reports its total as cpu-ns/op.
func (m *cpuMeter) report(b *testing.B) {
	m.stop()
	b.ReportMetric(float64(m.total.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
