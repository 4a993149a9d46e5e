// Command central is the audit writer: it authenticates, authorizes and
// rate-limits every caller and persists audits to PostgreSQL.
//
//	central [serve] [flags]   apply migrations, then serve the API (default)
//	central migrate [flags]   apply migrations and exit
//	central maintain [flags]  apply migrations, create the partitions ahead,
//	                          apply --retention, and exit (a CronJob's work,
//	                          for a serving role that may not change the
//	                          schema: maintain.go)
//	central verify [flags]    verify the ledger: the hash chain, every row,
//	                          against signed checkpoints (verifyledger.go)
//	central verify-export FILE --public-key KEY
//	                          check an audit export offline (verify.go)
//	central export --central-url URL --token-file F [flags]
//	                          stream a signed export from a running central
//	central holds list|show|place|release [flags]
//	                          a running central's legal holds (operator.go)
//
// Exit status: 0 done, 1 failed, 2 a command line it cannot run (the flag
// errors of the commands other than serve, migrate and maintain; for verify,
// 1 is also a trail that does not verify).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/internal/cli"
	"github.com/kubernaut/datastorage/storage"
)

func main() {
	// Before the signal handler: an interrupt stops a long verification.
	if len(os.Args) > 1 && os.Args[1] == "verify-export" {
		os.Exit(exitStatus(verifyExport(os.Args[2:], os.Stdin, os.Stdout, os.Stderr), os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	command := ""
	if len(os.Args) > 1 {
		command = os.Args[1]
	}
	var err error
	switch command {
	case "verify":
		err = verifyLedger(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "export":
		err = exportAudits(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	case "holds":
		err = holds(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// exitStatus reports err (none for --help, which printed the usage) and
// returns the exit status it means.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "central:", err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// run is the command: parse and check the options, migrate, and (for
// serve) build the parts and serve until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	log, err := cli.NewLogger(stderr, o.logLevel, o.logFormat, "central")
	if err != nil {
		return err
	}
	if err := migrate(ctx, log, o.databaseURL); err != nil {
		return err
	}
	if o.vectorURL != o.databaseURL {
		if err := migrate(ctx, log, o.vectorURL); err != nil {
			return fmt.Errorf("vector database: %w", err)
		}
	}
	switch o.command {
	case "migrate":
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case "maintain":
		return maintain(ctx, log, o, stdout)
	}
	return serve(ctx, log, o)
}

// migrate applies migrations, waiting for the database to come up: a
// central started before PostgreSQL retries (0.5 s doubling to 10 s)
// rather than crash-looping.
func migrate(ctx context.Context, log zerolog.Logger, databaseURL string) error {
	bo := backoff.New(500*time.Millisecond, 10*time.Second)
	for {
		err := storage.Migrate(ctx, databaseURL)
		if err == nil {
			return nil
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			return fmt.Errorf("migrate: %w", err)
		}
		delay := bo.Step()
		log.Warn().Err(err).Dur("retry_in", delay).Msg("database not reachable; retrying migrations")
		if !backoff.Sleep(ctx, delay, nil) {
			return fmt.Errorf("migrate: %w", ctx.Err())
		}
	}
}
