package replicas

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of Config.
const (
	// DefaultHeartbeat is how often a replica renews its row and counts.
	DefaultHeartbeat = time.Second
	// DefaultTTL is how long a replica that stopped beating (killed, or cut
	// off from the database) is still counted.
	DefaultTTL = 5 * time.Second
	// leaveTimeout bounds the deletion of the row on an orderly stop.
	leaveTimeout = 2 * time.Second
)

// Store is the membership table (storage.DB).
type Store interface {
	// ReplicaHeartbeat renews id's row, forgets rows older than ttl and
	// returns how many replicas were seen within ttl, id included.
	ReplicaHeartbeat(ctx context.Context, id, hostname string, ttl time.Duration) (int, error)
	// ReplicaLeave deletes id's row.
	ReplicaLeave(ctx context.Context, id string) error
}

// Config configures a Membership. Every field documents its zero value.
type Config struct {
	// Store is the membership table. Nil: only with Static.
	Store Store
	// Static, when positive, is the number of replicas, taken as given: no
	// Store, no heartbeat. Zero: discover through Store.
	Static int
	// Heartbeat is how often the row is renewed and the replicas counted.
	// Zero: DefaultHeartbeat.
	Heartbeat time.Duration
	// TTL is how long a replica is counted after its last heartbeat; it must
	// exceed Heartbeat. Zero: DefaultTTL.
	TTL time.Duration
	// ID names this replica's row. Zero: 16 random bytes in hex, new at each
	// start.
	ID string
	// Hostname is stored beside the ID, for humans. Zero: os.Hostname.
	Hostname string
	// OnChange is called with the new count whenever it changes (from Run's
	// goroutine; with Static, once, from New). Nil: nothing is called.
	OnChange func(n int)
	// Logger receives a line when the count changes, when the database
	// cannot be reached (once) and when it can again. Zero: zerolog's zero
	// Logger, which writes nothing.
	Logger zerolog.Logger
	// Metrics receives the gauge datastorage_central_replicas and the counter
	// datastorage_central_replica_heartbeat_failures_total. Nil: a set of
	// their own, exported nowhere.
	Metrics *metrics.Set
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Static < 0:
		return fmt.Errorf("replicas: Static must be 0 (discover) or a number of replicas, got %d", c.Static)
	case c.Static == 0 && c.Store == nil:
		return errors.New("replicas: Store is required unless Static is set")
	case c.Heartbeat < 0 || c.TTL < 0:
		return errors.New("replicas: Heartbeat and TTL must not be negative")
	case cmp.Or(c.TTL, DefaultTTL) <= cmp.Or(c.Heartbeat, DefaultHeartbeat):
		return fmt.Errorf("replicas: TTL (%s) must exceed Heartbeat (%s), or every replica would expire between heartbeats",
			cmp.Or(c.TTL, DefaultTTL), cmp.Or(c.Heartbeat, DefaultHeartbeat))
	}
	return nil
}

// Membership is this replica's place in the count.
type Membership struct {
	cfg      Config
	log      zerolog.Logger
	count    atomic.Int64
	failures *metrics.Counter

	failing bool // Run's only: the last heartbeat failed
}

// New checks cfg, fills in its defaults and registers the metrics. The count
// is Static, or 1 until the first heartbeat.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	if cfg.ID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		cfg.ID = hex.EncodeToString(b[:])
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	m := &Membership{cfg: cfg, log: cfg.Logger.With().Str("component", "replicas").Str("replica_id", cfg.ID).Logger()}
	m.count.Store(int64(max(cfg.Static, 1)))
	set := cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	set.NewGauge(`datastorage_central_replicas`, func() float64 { return float64(m.count.Load()) })
	m.failures = set.NewCounter(`datastorage_central_replica_heartbeat_failures_total`)
	if cfg.Static > 0 && cfg.OnChange != nil {
		cfg.OnChange(cfg.Static)
	}
	return m, nil
}

// Count is the number of live replicas as last seen, this one included: at
// least 1.
func (m *Membership) Count() int { return int(m.count.Load()) }

// ID is this replica's row's ID.
func (m *Membership) ID() string { return m.cfg.ID }

// Static reports whether the count is given rather than discovered.
func (m *Membership) Static() bool { return m.cfg.Static > 0 }

// Run beats at once and then every Heartbeat until ctx ends; then it deletes
// this replica's row (within 2 s), so that the others count one fewer at
// their next heartbeat rather than after the TTL. With Static it returns at
// once.
func (m *Membership) Run(ctx context.Context) {
	if m.Static() {
		return
	}
	tick := time.NewTicker(m.cfg.Heartbeat)
	defer tick.Stop()
	for {
		m.beat(ctx)
		select {
		case <-ctx.Done():
			m.leave(ctx)
			return
		case <-tick.C:
		}
	}
}

// beat is one heartbeat: a failure keeps the last count, logged once until
// a heartbeat succeeds again. Each waits at most half the TTL: a replica
// whose heartbeats take longer is about to be taken for dead anyway.
func (m *Membership) beat(ctx context.Context) {
	bctx, cancel := context.WithTimeout(ctx, m.cfg.TTL/2)
	n, err := m.cfg.Store.ReplicaHeartbeat(bctx, m.cfg.ID, m.cfg.Hostname, m.cfg.TTL)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return // stopping
		}
		m.failures.Inc()
		if !m.failing {
			m.log.Error().Err(err).Int("replicas", m.Count()).
				Msg("replica heartbeat failed; keeping the last count of replicas until the database answers")
		}
		m.failing = true
		return
	}
	if m.failing {
		m.log.Info().Int("replicas", n).Msg("replica heartbeat works again")
		m.failing = false
	}
	if old := m.count.Swap(int64(n)); old != int64(n) {
		m.log.Info().Int64("from", old).Int("to", n).Msg("number of central replicas changed; each enforces its share of the rate limits")
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(n)
		}
	}
}

func (m *Membership) leave(ctx context.Context) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	if err := m.cfg.Store.ReplicaLeave(lctx, m.cfg.ID); err != nil {
		m.log.Warn().Err(err).Msg("could not remove this replica from the count; the others stop counting it after the TTL")
	}
}
