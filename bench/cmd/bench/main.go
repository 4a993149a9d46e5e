// Command bench runs the end-to-end benchmark of the audit write path:
// it starts PostgreSQL (or uses --database-url), the central and the agents,
// drives load, verifies exactly-once storage and writes a table, a JSON
// results file and a self-contained HTML report. It exits 1 when an
// acknowledged record was lost or duplicated.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/kubernaut/datastorage/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "small configuration (make bench-quick): 6s per load scenario, 50k COPY rows")
	dbURL := fs.String("database-url", os.Getenv("BENCH_DATABASE_URL"), "admin URL of an existing PostgreSQL+pgvector cluster (default: start a throwaway one)")
	controllers := fs.Int("controllers", 64, "concurrent controllers")
	agents := fs.Int("agents", 4, "agent processes in the sidecar path")
	duration := fs.Duration("duration", 20*time.Second, "load per scenario")
	repeat := fs.Float64("repeat", 0.8, "share of records repeating one of --alert-texts texts (alert storm)")
	texts := fs.Int("alert-texts", 200, "distinct repeated alert texts")
	copyRows := fs.Int("copy-rows", 200000, "rows of the raw COPY limit")
	vecDur := fs.Duration("vector-duration", 0, "duration of the raw vector COPY limit (default: --duration)")
	readRate := fs.Float64("read-rate", 40, "reads per second (pages and timelines, all readers together) of the sidecar-reads scenario's reader")
	scenarios := fs.String("scenarios", strings.Join(bench.AllScenarios, ","), "comma-separated scenarios")
	out := fs.String("out", "bench-results", "directory of results.json and report.html")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bench process (the load generator) to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := bench.Config{DatabaseURL: *dbURL, Controllers: *controllers, Agents: *agents, Duration: *duration,
		RepeatFraction: *repeat, AlertTexts: *texts, CopyRows: *copyRows, VectorDuration: *vecDur, ReadRate: *readRate,
		Scenarios: strings.Split(*scenarios, ","), Progress: os.Stderr}
	if *repeat == 0 {
		cfg.RepeatFraction = -1
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			cfg.Duration = 6 * time.Second
		}
		if !set["copy-rows"] {
			cfg.CopyRows = 50000
		}
		if !set["vector-duration"] {
			cfg.VectorDuration = 5 * time.Second
		}
		cfg.DrainTimeout = 45 * time.Second
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		res.WriteTable(os.Stdout)
		if mkErr := os.MkdirAll(*out, 0o755); mkErr != nil {
			return errors.Join(err, mkErr)
		}
		jsonPath, htmlPath := filepath.Join(*out, "results.json"), filepath.Join(*out, "report.html")
		if werr := res.WriteJSON(jsonPath); werr != nil {
			return errors.Join(err, werr)
		}
		if werr := res.WriteHTML(htmlPath); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintf(os.Stdout, "Results: %s, %s\n", jsonPath, htmlPath)
	}
	return err
}
