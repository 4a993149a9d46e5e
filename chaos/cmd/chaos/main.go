// Command chaos is `make chaos`: the fault-injection run of package chaos
// with the full run's fault counts, then its failover phase on a throwaway
// Patroni cluster (chaos.FailoverPhase), printing each phase's table and
// exiting 1 on any lost or duplicated acknowledged record.
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
	phases := flag.String("phases", "main,failover", "which phases: main (single PostgreSQL, every other fault), failover (Patroni cluster, the primary killed)")
	failovers := flag.Int("failovers", 0, "primary kills in the failover phase (0: 2)")
	flag.Parse()
	if *short {
		s := chaos.Short()
		s.DatabaseURL, s.Progress, s.Seed = cfg.DatabaseURL, cfg.Progress, cfg.Seed
		cfg = s
	}
	ha := chaos.FailoverPhase()
	ha.Progress, ha.Seed = os.Stderr, cfg.Seed
	if *failovers != 0 {
		ha.Failovers = *failovers
	}
	run := map[string]chaos.Config{"main": cfg, "failover": ha}
	worst := 0
	for _, name := range strings.Split(*phases, ",") {
		c, ok := run[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "chaos: unknown phase %q (want main, failover)\n", name)
			os.Exit(2)
		}
		if code := runPhase(ctx, name, c); code > worst {
			worst = code
		}
		if ctx.Err() != nil {
			break
		}
	}
	os.Exit(worst)
}

// runPhase runs one phase and prints its table; the exit code is 1 for a
// lost or duplicated record, 2 for any other failure.
func runPhase(ctx context.Context, name string, cfg chaos.Config) int {
	began := time.Now()
	res, err := chaos.Run(ctx, cfg)
	if res != nil {
		fmt.Printf("\n## chaos phase: %s\n\n", name)
		res.WriteTable(os.Stdout)
		fmt.Printf("\nWall time %s.\n", time.Since(began).Round(time.Second))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %s: %v\n", name, err)
		if errors.Is(err, chaos.ErrLossOrDuplicate) {
			return 1
		}
		return 2
	}
	return 0
}
