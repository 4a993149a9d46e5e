package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kubernaut/datastorage/internal/tstest/freeport"
)

// Cluster is a throwaway PostgreSQL cluster with pgvector, started through
// scripts/pg-cluster.sh in a temporary directory on a free port.
type Cluster struct {
	AdminURL        string
	root, dir, port string
}

// StartCluster provisions PostgreSQL when missing (scripts/
// provision-postgres.sh) and starts a cluster; root is the module's root.
func StartCluster(ctx context.Context, root string) (*Cluster, error) {
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
	c := &Cluster{root: root, dir: dir, port: port}
	if out, err := runScript(ctx, root, "scripts/pg-cluster.sh", "start", dir, port); err != nil {
		c.Close()
		return nil, fmt.Errorf("start PostgreSQL: %w\n%s", err, out)
	}
	out, err := runScript(ctx, root, "scripts/pg-cluster.sh", "url", port)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster url: %w", err)
	}
	c.AdminURL = strings.TrimSpace(string(out))
	return c, nil
}

// Stop stops the cluster (pg_ctl -m fast) and keeps its data: Start starts
// it again.
func (c *Cluster) Stop(ctx context.Context) error {
	if out, err := runScript(ctx, c.root, "scripts/pg-cluster.sh", "stop", c.dir); err != nil {
		return fmt.Errorf("pg-cluster.sh stop: %w: %s", err, out)
	}
	return nil
}

// Start starts a stopped cluster again, on the same port.
func (c *Cluster) Start(ctx context.Context) error {
	if out, err := runScript(ctx, c.root, "scripts/pg-cluster.sh", "start", c.dir, c.port); err != nil {
		return fmt.Errorf("pg-cluster.sh start: %w: %s", err, out)
	}
	return nil
}

// Close stops the cluster and removes its directory.
func (c *Cluster) Close() {
	_, _ = runScript(context.Background(), c.root, "scripts/pg-cluster.sh", "stop", c.dir)
	_ = os.RemoveAll(c.dir)
}

func runScript(ctx context.Context, root, script string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, script)}, args...)...)
	cmd.Dir = root
	return cmd.CombinedOutput()
}

// CreateDatabase makes a fresh database with pgvector on the cluster of
// admin, named after label, and returns its URL; drop removes it.
func CreateDatabase(ctx context.Context, admin, label string) (dsn string, drop func(), err error) {
	return createDatabase(ctx, admin, label, "")
}

// CopyDatabase makes a database as CreateDatabase does, as a copy of the
// database at dsn on the same cluster (CREATE DATABASE … TEMPLATE, STRATEGY
// FILE_COPY: a checkpoint, then the files are copied; nothing may be
// connected to dsn's database meanwhile, and a session still closing is
// waited for up to 10 s).
func CopyDatabase(ctx context.Context, admin, dsn, label string) (copied string, drop func(), err error) {
	u, err := url.Parse(dsn)
	if err != nil || strings.Trim(u.Path, "/") == "" {
		return "", nil, errors.New("database URL: want postgres://…/database")
	}
	return createDatabase(ctx, admin, label, strings.Trim(u.Path, "/"))
}

func createDatabase(ctx context.Context, admin, label, template string) (dsn string, drop func(), err error) {
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "bench_" + strings.ReplaceAll(label, "-", "_") + "_" + hex.EncodeToString(suffix[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", redact(admin), err)
	}
	defer conn.Close(ctx)
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		stmt += " TEMPLATE " + pgx.Identifier{template}.Sanitize() + " STRATEGY FILE_COPY"
	}
	for wait := 100 * time.Millisecond; ; wait *= 2 {
		_, err = conn.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		// 55006: the template is still accessed (a closed session's backend
		// has not exited yet).
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || wait > 5*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	if err != nil {
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
	dc, err := connectNew(ctx, dsn)
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

// connectNew connects to a database just created. With a multi-host URL
// the first host may be a standby that has not replayed the CREATE DATABASE
// yet (a synchronous commit waits for the standby's flush, not its replay),
// and pgx tries no further host after "database does not exist" (3D000):
// try again for a few seconds.
func connectNew(ctx context.Context, dsn string) (*pgx.Conn, error) {
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		conn, err := pgx.Connect(ctx, dsn)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "3D000" || wait > 5*time.Second {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(database URL)"
}
