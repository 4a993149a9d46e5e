package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// procTimes is a CPU reading of a process in clock ticks.
type procTimes struct {
	self, children uint64 // utime+stime; cutime+cstime
	ppid           int
}

const clockTicks = 100 // USER_HZ on Linux

func readStat(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procTimes{}, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procTimes{}, errors.New("short stat")
	}
	num := func(k int) uint64 { v, _ := strconv.ParseUint(f[k], 10, 64); return v }
	ppid, _ := strconv.Atoi(f[1])
	// f[0] is state (field 3); utime is field 14 → f[11].
	return procTimes{self: num(11) + num(12), children: num(13) + num(14), ppid: ppid}, nil
}

// statusKB reads a "VmHWM:"-style field of /proc/PID/status in KiB.
func statusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// postgresTicks is the CPU of a PostgreSQL cluster: the postmaster with its
// reaped children, plus every live child.
func postgresTicks(postmaster int) uint64 {
	pm, err := readStat(postmaster)
	if err != nil {
		return 0
	}
	total := pm.self + pm.children
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		if st, err := readStat(pid); err == nil && st.ppid == postmaster {
			total += st.self
		}
	}
	return total
}

// postgresPeakRSS is the largest VmHWM of the cluster's processes (shared
// buffers are counted in each, so a sum would overstate).
func postgresPeakRSS(postmaster int) int64 {
	peak := statusKB(postmaster, "VmHWM")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.ppid == postmaster {
			peak = max(peak, statusKB(pid, "VmHWM"))
		}
	}
	return peak
}

// postmasterPID reads postmaster.pid of the cluster behind admin (same
// machine, readable by us); 0 when unknown.
func postmasterPID(ctx context.Context, admin string) int {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}
