package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kubernaut/datastorage/internal/freeport"
)

// pgCluster is the throwaway cluster started through scripts/pg-cluster.sh.
type pgCluster struct {
	root, dir string
	adminURL  string
}

func startCluster(ctx context.Context, root string) (*pgCluster, error) {
	if out, err := runScript(ctx, root, "scripts/provision-postgres.sh"); err != nil {
		return nil, fmt.Errorf("provision PostgreSQL: %w\n%s", err, out)
	}
	addr, err := freeport.Free()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	dir, err := os.MkdirTemp("", "datastorage-bench-pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{root: root, dir: dir}
	if out, err := runScript(ctx, root, "scripts/pg-cluster.sh", "start", dir, port); err != nil {
		c.stop()
		return nil, fmt.Errorf("start PostgreSQL: %w\n%s", err, out)
	}
	out, err := runScript(ctx, root, "scripts/pg-cluster.sh", "url", port)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("cluster url: %w", err)
	}
	c.adminURL = strings.TrimSpace(string(out))
	return c, nil
}

func (c *pgCluster) stop() {
	_, _ = runScript(context.Background(), c.root, "scripts/pg-cluster.sh", "stop", c.dir)
	_ = os.RemoveAll(c.dir)
}

func runScript(ctx context.Context, root, script string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, script)}, args...)...)
	cmd.Dir = root
	return cmd.CombinedOutput()
}

// createDatabase makes a fresh database with pgvector on the cluster of
// admin and returns its URL; drop removes it.
func createDatabase(ctx context.Context, admin, label string) (dsn string, drop func(), err error) {
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "bench_" + strings.ReplaceAll(label, "-", "_") + "_" + hex.EncodeToString(suffix[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", redact(admin), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, errors.New("database URL: want postgres://…")
	}
	u.Path = "/" + name
	dsn = u.String()
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	}
	dc, err := pgx.Connect(ctx, dsn)
	if err != nil {
		drop()
		return "", nil, err
	}
	defer dc.Close(ctx)
	if _, err := dc.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		drop()
		return "", nil, fmt.Errorf("create extension vector (is pgvector installed?): %w", err)
	}
	return dsn, drop, nil
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(database URL)"
}

// saToken is a JWT-shaped service-account token (unsigned: the central's
// static authenticator compares the whole string; an agent reads its sub).
func saToken(sa string, n int) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":"system:serviceaccount:%s:%s","jti":"bench-%d"}`, benchNamespace, sa, n)) + ".sig" + strconv.Itoa(n)
}

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
