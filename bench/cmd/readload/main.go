// Command readload loads a database with realistic audits for the read
// API's performance check, or measures the reads on it (issue 13: 10
// million rows; not part of `go test` or `make bench`):
//
//	go run ./bench/cmd/readload --database-url URL --rows 10000000        # migrate, COPY, VACUUM ANALYZE
//	go run ./bench/cmd/readload --database-url URL --measure              # timelines, pages, export
//	go run ./bench/cmd/readload --database-url URL --measure --via central  # the same through the central's API
//
// --via storage (the default) reads through package storage in this
// process; --via central builds cmd/central (or takes it from --bin-dir),
// starts it on URL with static tokens, a reader allowed read:audit and
// export:audit, an unreachable read budget and a new export key, and makes
// the same reads over HTTP, the export verified with export.Verify. The
// export's RSS is the exporting process's: this one, or the central.
//
// URL names a database of its own (the audit tables must be empty to load):
// create it first, drop it after.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kubernaut/datastorage/bench/readload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "readload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("readload", flag.ContinueOnError)
	dbURL := fs.String("database-url", "", "the database to load or measure (required)")
	rows := fs.Int64("rows", readload.DefaultRows, "rows to load, both tables together")
	days := fs.Int("days", readload.DefaultDays, "span of the event times, ending now")
	seed := fs.Uint64("seed", 13, "seed of the data and of the measured reads")
	measure := fs.Bool("measure", false, "measure the reads on a loaded database instead of loading")
	samples := fs.Int("samples", readload.DefaultSamples, "with --measure: timelines, and pages per filter")
	skipExport := fs.Bool("skip-export", false, "with --measure: leave out the export of the whole table")
	via := fs.String("via", readload.ViaStorage, "with --measure: read through \""+readload.ViaStorage+
		"\" (the package, in this process) or \""+readload.ViaCentral+"\" (a central binary's HTTP API)")
	binDir := fs.String("bin-dir", "", "with --via central: directory holding a built central binary (default: go build)")
	plainExport := fs.Bool("plain-export", false, "with --via central: ask for the export uncompressed (default: gzip, as the Go client)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *dbURL == "" {
		return errors.New("--database-url is required")
	}
	if !*measure {
		var misplaced []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "samples", "skip-export", "via", "bin-dir", "plain-export":
				misplaced = append(misplaced, "--"+f.Name)
			}
		})
		if len(misplaced) > 0 {
			return fmt.Errorf("%s go with --measure", strings.Join(misplaced, ", "))
		}
	}
	if *measure {
		m, err := readload.Measure(ctx, readload.MeasureConfig{DatabaseURL: *dbURL, Samples: *samples, Seed: *seed,
			SkipExport: *skipExport, Via: *via, Central: readload.CentralConfig{BinDir: *binDir, PlainExport: *plainExport},
			Progress: os.Stderr})
		if err != nil {
			return err
		}
		fmt.Println("reads via", m.Via)
		for _, l := range m.Reads {
			fmt.Println(l)
		}
		if e := m.Export; e != nil {
			fmt.Println(e)
		}
		return nil
	}
	res, err := readload.Load(ctx, readload.LoadConfig{DatabaseURL: *dbURL, Rows: *rows, Days: *days, Seed: *seed,
		Progress: os.Stderr})
	if err != nil {
		return err
	}
	total := res.RemediationRows + res.WorkflowRows
	fmt.Printf("loaded %d rows (%d remediation_audit, %d workflow_audit; %d remediations): "+
		"migrate %s, COPY %s (%.0f rows/s), VACUUM ANALYZE %s\n",
		total, res.RemediationRows, res.WorkflowRows, res.Remediations, res.Migrate.Round(time.Millisecond),
		res.Copy.Round(time.Second), float64(total)/res.Copy.Seconds(), res.Vacuum.Round(time.Second))
	return nil
}
