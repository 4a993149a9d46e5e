// Command chaos is `make chaos`: the fault-injection run of package chaos
// with the full run's fault counts, printing the table and exiting 1 on any
// lost or duplicated acknowledged record.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubernaut/datastorage/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := chaos.Config{Progress: os.Stderr}
	short := flag.Bool("short", false, "the in-suite run's fault counts (every kind at least once, well under a minute)")
	flag.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("CHAOS_DATABASE_URL"), "admin URL of a cluster this run does not own (the outage is then a proxy cut); empty: a throwaway cluster, stopped for real")
	flag.IntVar(&cfg.AgentKills, "agent-kills", 0, "agent kill -9 count (0: 20)")
	flag.IntVar(&cfg.CentralKills, "central-kills", 0, "central kill -9 count (0: 5)")
	flag.DurationVar(&cfg.Outage, "outage", 0, "PostgreSQL outage (0: 30s)")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "fault order and moments (0: 1)")
	flag.Parse()
	if *short {
		s := chaos.Short()
		s.DatabaseURL, s.Progress, s.Seed = cfg.DatabaseURL, cfg.Progress, cfg.Seed
		cfg = s
	}
	began := time.Now()
	res, err := chaos.Run(ctx, cfg)
	if res != nil {
		fmt.Println()
		res.WriteTable(os.Stdout)
		fmt.Printf("\nWall time %s.\n", time.Since(began).Round(time.Second))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		if errors.Is(err, chaos.ErrLossOrDuplicate) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}
