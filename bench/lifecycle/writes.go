package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/bench/readload"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Writes is WriteBatch's rate into an empty partitioned database and into
// the loaded one.
type Writes struct {
	Records, BatchSize, Writers int
	Rounds                      []WriteRound
	// Empty and Loaded are each database's rate over all rounds (records
	// over the time of all its measurements), in records per second.
	Empty, Loaded float64
}

// WriteRound is one measurement of each database, the same records into
// both, in records per second; LoadedFirst says which went first.
type WriteRound struct {
	Empty, Loaded float64
	LoadedFirst   bool
}

// Ratio is Loaded over Empty: the rate kept at scale.
func (w *Writes) Ratio() float64 { return w.Loaded / w.Empty }

// MedianRatio is the median of the rounds' ratios.
func (w *Writes) MedianRatio() float64 {
	r := make([]float64, len(w.Rounds))
	for i, round := range w.Rounds {
		r[i] = round.Loaded / round.Empty
	}
	slices.Sort(r)
	if len(r)%2 == 1 {
		return r[len(r)/2]
	}
	return (r[len(r)/2-1] + r[len(r)/2]) / 2
}

// batch is one WriteBatch call: a writer's records.
type batch struct {
	sa   string
	recs []wire.Record
}

// measureWrites times WriteBatch into a new database laid out as the loaded
// one (the same partitions, no rows) and into the loaded one at loadedDSN,
// cfg.Rounds times each, alternating which goes first.
func measureWrites(ctx context.Context, cfg Config, loadedDSN string, l *Load) (*Writes, error) {
	emptyDSN, drop, err := loadgen.CreateDatabase(ctx, cfg.DatabaseURL, "lifecycle_empty")
	if err != nil {
		return nil, fmt.Errorf("lifecycle: %w", err)
	}
	defer drop()
	if err := storage.Migrate(ctx, emptyDSN); err != nil {
		return nil, err
	}
	parts := l.Layout[wire.KindRemediation]
	if err := readload.ArrangePartitions(ctx, emptyDSN, parts[0].To, parts[len(parts)-1].To, storage.PeriodMonth); err != nil {
		return nil, err
	}
	open := func(dsn string) (*storage.DB, error) {
		return storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: int32(cfg.Writers)})
	}
	empty, err := open(emptyDSN)
	if err != nil {
		return nil, err
	}
	defer empty.Close()
	loaded, err := open(loadedDSN)
	if err != nil {
		return nil, err
	}
	defer loaded.Close()
	admin, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: connect: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))

	w := &Writes{Records: cfg.WriteRecords, BatchSize: cfg.BatchSize, Writers: cfg.Writers}
	gen := readload.NewGenerator(cfg.Seed ^ 0x17)
	var emptyTime, loadedTime time.Duration
	for i := range cfg.Rounds {
		batches := makeBatches(gen, cfg.WriteRecords, cfg.BatchSize, time.Now())
		round := WriteRound{LoadedFirst: i%2 == 1}
		order := []*storage.DB{empty, loaded}
		if round.LoadedFirst {
			order = []*storage.DB{loaded, empty}
		}
		for _, db := range order {
			if err := checkpoint(ctx, admin); err != nil {
				return w, err
			}
			el, err := writeAll(ctx, db, batches, cfg.Writers)
			if err != nil {
				return w, err
			}
			rate := float64(cfg.WriteRecords) / el.Seconds()
			if db == empty {
				round.Empty, emptyTime = rate, emptyTime+el
			} else {
				round.Loaded, loadedTime = rate, loadedTime+el
			}
		}
		w.Rounds = append(w.Rounds, round)
		progressf(cfg, "writes round %d: empty %.0f records/s, loaded %.0f records/s (%.2f)", i+1,
			round.Empty, round.Loaded, round.Loaded/round.Empty)
	}
	total := float64(cfg.WriteRecords * cfg.Rounds)
	w.Empty, w.Loaded = total/emptyTime.Seconds(), total/loadedTime.Seconds()
	return w, nil
}

// makeBatches makes n records of remediations beginning now, in batches of
// up to size records of one writer each, in the order they fill up.
func makeBatches(gen *readload.Generator, n, size int, now time.Time) []batch {
	var out []batch
	pending := map[string][]wire.Record{}
	made := 0
	for i := 0; made < n; i++ {
		gen.Remediation(now.Add(time.Duration(i)*time.Millisecond), func(sa string, rec wire.Record) {
			if made == n {
				return
			}
			made++
			pending[sa] = append(pending[sa], rec)
			if len(pending[sa]) == size {
				out = append(out, batch{sa: sa, recs: pending[sa]})
				pending[sa] = nil
			}
		})
	}
	sas := make([]string, 0, len(pending))
	for sa := range pending {
		sas = append(sas, sa)
	}
	slices.Sort(sas)
	for _, sa := range sas {
		if len(pending[sa]) > 0 {
			out = append(out, batch{sa: sa, recs: pending[sa]})
		}
	}
	return out
}

// writeAll writes the batches through db from writers goroutines and
// returns the time from the first call to the last answer. Every record
// must come back persisted.
func writeAll(ctx context.Context, db *storage.DB, batches []batch, writers int) (time.Duration, error) {
	next := make(chan batch)
	eg, ctx := errgroup.WithContext(ctx)
	t0 := time.Now()
	for range writers {
		eg.Go(func() error {
			for b := range next {
				st, err := db.WriteBatch(ctx, b.sa, b.recs)
				if err != nil {
					return fmt.Errorf("lifecycle: write: %w", err)
				}
				for i, s := range st {
					if s != wire.StatusPersisted {
						return fmt.Errorf("lifecycle: write: record %s came back %s", b.recs[i].ID, s)
					}
				}
			}
			return nil
		})
	}
	eg.Go(func() error {
		defer close(next)
		for _, b := range batches {
			select {
			case next <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	err := eg.Wait()
	return time.Since(t0), err
}
