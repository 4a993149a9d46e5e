package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
)

const verifyLedgerUsage = `Usage: central verify --database-url URL [--checkpoints FILE --public-key KEY]... [flags]

Verifies the audit ledger (README "Tamper evidence"): recomputes the hash
chain over the entries and the leaf of every stored row, in one snapshot,
and holds the chain against signed checkpoints kept outside the database.
Reports, naming the entry's sequence number and the record: a changed field,
a deleted row, a row inserted outside the central, reordered or altered
entries, entries deleted from the newest end or a restore from an older
backup (against a checkpoint), a row put back into a range retention pruned.
Read-only; a full verification reads every row once.

Exit status: 0 the trail verifies (a summary on standard output), 1 it does
not, or the database could not be read (the failures on standard error), 2
usage error.

Flags:
`

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// verifyLedger is `central verify`.
func verifyLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := commandFlags("central verify", verifyLedgerUsage, stderr)
	var checkpointFiles stringList
	databaseURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "the audit database (env DATABASE_URL)")
	fs.Var(&checkpointFiles, "checkpoints", "a file of checkpoint lines (what --checkpoint-file collects, or the log's \"checkpoint\" objects); repeatable")
	publicKey := fs.String("public-key", "", "the checkpoint key's public key (PEM, `openssl pkey -in KEY -pubout`); required with --checkpoints")
	from := fs.Int64("from", 0, "the first entry to verify (0: the genesis, and every row is checked)")
	through := fs.Int64("through", 0, "the last entry to verify (0: the head)")
	pendingAge := fs.Duration("pending-age", time.Minute, "how long an entry may wait for its sequence number before it is a failure")
	asJSON := fs.Bool("json", false, "print the whole report as JSON on standard output")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Errorf("verify: %w", err)}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("verify: unexpected argument %q (central verify --help)", fs.Arg(0))}
	case *databaseURL == "":
		return usageError{errors.New("verify: --database-url (or DATABASE_URL) is required")}
	case len(checkpointFiles) > 0 && *publicKey == "":
		return usageError{errors.New("verify: --checkpoints needs --public-key to check their signatures")}
	case *from < 0 || *through < 0 || (*through > 0 && *through < *from):
		return usageError{fmt.Errorf("verify: bad range --from %d --through %d", *from, *through)}
	}
	opts := storage.VerifyOptions{From: *from, Through: *through, PendingAge: *pendingAge}
	if len(checkpointFiles) > 0 {
		pub, err := export.LoadPublicKey(*publicKey)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if opts.Checkpoints, err = readCheckpointFiles(checkpointFiles, pub); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: *databaseURL, MaxConns: 2})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer db.Close()
	start := time.Now()
	r, err := db.VerifyLedger(ctx, opts)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	took := time.Since(start)
	if *asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	}
	summary := fmt.Sprintf("entries %d to %d of %d (%d), %d rows (%.0f/s), %d pruned by retention, %d pending, %d from before the ledger, %d checkpoints",
		r.From, r.Through, r.HeadSeq, r.Entries, r.Rows, float64(r.Rows)/took.Seconds(), r.Pruned, r.Pending, r.Legacy, r.Checkpoints)
	if r.OK() {
		if !*asJSON {
			fmt.Fprintf(stdout, "ledger verified: %s; head %d %s\n", summary, r.HeadSeq, r.HeadHash)
		}
		return nil
	}
	for i, f := range r.Failures {
		if i == 20 {
			fmt.Fprintf(stderr, "… %d more\n", r.FailuresTotal-20)
			break
		}
		fmt.Fprintln(stderr, f.String())
	}
	return fmt.Errorf("verify: the ledger does not verify: %d failures, the first %s; %s", r.FailuresTotal, r.Failures[0], summary)
}

// readCheckpointFiles reads and checks every checkpoint in files.
func readCheckpointFiles(files []string, pub ed25519.PublicKey) ([]ledger.Checkpoint, error) {
	var all []ledger.Checkpoint
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		cps, err := ledger.ReadCheckpoints(f, pub)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		all = append(all, cps...)
	}
	return all, nil
}
