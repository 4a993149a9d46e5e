// Command lifecycle measures the audit tables' time partitions over their
// life at scale (issue 17: 10 million rows over 12 monthly partitions; not
// part of `go test` or `make bench`): the load, WriteBatch's rate into an
// empty and into the loaded database, dropping the oldest month, and
// migration 7 on the plain tables under single-row writes, as is and with
// its new keys built beforehand (see package bench/lifecycle):
//
//	go run ./bench/cmd/lifecycle --database-url postgres://postgres@127.0.0.1:55432/postgres
//
// URL is any database of the cluster, as a role that may create databases:
// the run creates its own (bench_lifecycle_*), and drops each when its step
// is done, also on failure or interrupt. At 10 million rows it needs about
// twice the loaded database's size free (the second migration runs on a
// file copy of the first's database), and took 9 minutes on 2 cores.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubernaut/datastorage/bench/lifecycle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lifecycle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg, err := parse(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rep, err := lifecycle.Run(ctx, cfg)
	if rep != nil {
		fmt.Print(rep)
	}
	return err
}

func parse(args []string) (lifecycle.Config, error) {
	fs := flag.NewFlagSet("lifecycle", flag.ContinueOnError)
	var cfg lifecycle.Config
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "a postgres:// URL on the cluster, as a role that may create databases (required)")
	fs.Int64Var(&cfg.Rows, "rows", lifecycle.DefaultRows, "rows to load, both tables together (and again into the plain tables)")
	fs.IntVar(&cfg.Months, "months", lifecycle.DefaultMonths, "monthly partitions the rows fill: the whole months before this one")
	fs.Uint64Var(&cfg.Seed, "seed", 17, "seed of the data and of the written records")
	fs.IntVar(&cfg.WriteRecords, "write-records", lifecycle.DefaultWriteRecords, "records of each WriteBatch measurement")
	fs.IntVar(&cfg.Writers, "writers", lifecycle.DefaultWriters, "goroutines calling WriteBatch")
	fs.IntVar(&cfg.Rounds, "rounds", lifecycle.DefaultRounds, "measurements of each database, alternated")
	fs.Float64Var(&cfg.InsertRate, "insert-rate", lifecycle.DefaultInsertRate, "single-row inserts per second during the migrations")
	fs.BoolVar(&cfg.SkipWrites, "skip-writes", false, "leave out the WriteBatch measurement")
	fs.BoolVar(&cfg.SkipDrop, "skip-drop", false, "leave out dropping the oldest month")
	fs.BoolVar(&cfg.SkipMigration, "skip-migration", false, "leave out the migration of the plain tables")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg.Progress = os.Stderr
	return cfg, cfg.Validate()
}
