package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnvVar names the environment variable holding the admin DSN of the
// development cluster.
const EnvVar = "TEST_DATABASE_URL"

// MissingEnvMessage is the t.Fatal message when EnvVar is unset.
const MissingEnvMessage = "TEST_DATABASE_URL is not set: run `make test`, which " +
	"installs PostgreSQL 15 with pgvector and starts a throwaway cluster"

// setupTimeout bounds creating (or dropping) one database, including the
// retries below; the cluster is local, so this is generous.
const setupTimeout = 60 * time.Second

// NewDatabase creates a fresh, uniquely named database on the cluster named by
// TEST_DATABASE_URL (an admin DSN), with CREATE EXTENSION vector done, drops it
// (WITH (FORCE)) in t.Cleanup, and returns its DSN.
// If TEST_DATABASE_URL is unset it calls t.Fatal with: "TEST_DATABASE_URL is not
// set: run `make test`, which installs PostgreSQL 15 with pgvector and starts a
// throwaway cluster" — never t.Skip.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvVar)
	if admin == "" {
		t.Fatal(MissingEnvMessage)
	}
	name, err := databaseName(t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvVar, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := createDatabase(ctx, admin, name); err != nil {
		t.Fatalf("pgtest: create database %s on the cluster of %s: %v", name, EnvVar, err)
	}
	// Registered before anything else can fail, so a half-made database is
	// dropped too.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := dropDatabase(ctx, admin, name); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	if err := exec(ctx, dsn, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		t.Fatalf("pgtest: create extension vector in %s (is pgvector installed? `make test` builds it): %v", name, err)
	}
	return dsn
}

// databaseName is "pgtest_<sanitised test name>_<random hex>", within
// PostgreSQL's 63-byte identifier limit. The random suffix makes it unique
// across parallel tests and concurrently running test binaries.
func databaseName(testName string) (string, error) {
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 36 {
			break
		}
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return "pgtest_" + b.String() + "_" + hex.EncodeToString(suffix[:]), nil
}

// withDatabase returns dsn (URL or keyword/value form) pointing at database name.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url.Parse errors quote the whole URL, password included.
			return "", errors.New("not a valid postgres:// URL")
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// Keyword/value form: a later keyword overrides an earlier one.
	return dsn + " dbname=" + name, nil
}

func createDatabase(ctx context.Context, admin, name string) error {
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	// Concurrent CREATE DATABASE can fail with 55006 (object_in_use) when
	// another session is connected to template1 at that instant: retry.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		err = exec(ctx, admin, stmt)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return err
}

func dropDatabase(ctx context.Context, admin, name string) error {
	return exec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// exec runs one statement on a short-lived connection.
func exec(ctx context.Context, dsn, stmt string) (err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, conn.Close(ctx)) }()
	_, err = conn.Exec(ctx, stmt)
	return err
}
