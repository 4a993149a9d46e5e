// Package notary keeps the ledger (package ledger) moving in the background
// of every central replica: it sequences the entries writers committed
// (storage.DB.SequenceLedger: gapless numbers, chain hashes), and, given a
// signing key, signs checkpoints of the head and writes each one to the log,
// to a file kept apart from the database, and to the database's own copy.
// Any number of replicas may run it: sequencing takes turns under an
// advisory lock, and two replicas' checkpoints of one head are both valid.
package notary

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
)

const (
	// DefaultSequenceInterval is how often a replica sequences: a committed
	// entry is in the chain within about that long.
	DefaultSequenceInterval = 200 * time.Millisecond
	// DefaultCheckpointInterval is how often a replica signs the head, when
	// it moved; an unchanged head is signed again after an hour, so that the
	// checkpoints also say the trail was whole at that time.
	DefaultCheckpointInterval = time.Minute
	unchangedHeadCheckpoint   = time.Hour
)

// Store is the audit database (storage.DB).
type Store interface {
	SequenceLedger(ctx context.Context) (int, storage.Head, error)
	SaveCheckpoint(ctx context.Context, c ledger.Checkpoint) error
}

// Config configures a Notary.
type Config struct {
	Store Store
	// SequenceInterval: zero is DefaultSequenceInterval.
	SequenceInterval time.Duration
	// Key signs checkpoints; nil: none are signed (the chain is still kept).
	Key *export.KeyFile
	// CheckpointInterval: zero is DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// CheckpointFile, when set, receives each checkpoint as a JSON line,
	// appended and fsynced: mount it from storage the database's
	// administrators cannot write.
	CheckpointFile string
	Logger         zerolog.Logger
	Metrics        *metrics.Set // nil: none registered
	Now            func() time.Time
}

// Notary runs the sequencing and the checkpoints.
type Notary struct {
	cfg Config
	log zerolog.Logger

	headSeq, checkpointSeq, lastCheckpoint atomic.Int64
	sequenced, failures, checkpoints       *metrics.Counter

	lastSigned storage.Head // the head of Run's last checkpoint (Run's only)
	signedAt   time.Time
	fileMu     sync.Mutex // one append at a time: Run's and exports' checkpoints
}

// New checks cfg and registers the metrics.
func New(cfg Config) (*Notary, error) {
	if cfg.Store == nil {
		return nil, errors.New("notary: Store is required")
	}
	if cfg.SequenceInterval < 0 || cfg.CheckpointInterval < 0 {
		return nil, errors.New("notary: intervals must not be negative")
	}
	if cfg.SequenceInterval == 0 {
		cfg.SequenceInterval = DefaultSequenceInterval
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CheckpointFile != "" && cfg.Key == nil {
		return nil, errors.New("notary: a checkpoint file needs a signing key")
	}
	n := &Notary{cfg: cfg, log: cfg.Logger.With().Str("component", "ledger").Logger()}
	set := cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	n.sequenced = set.NewCounter(`datastorage_ledger_sequenced_entries_total`)
	n.failures = set.NewCounter(`datastorage_ledger_failures_total`)
	n.checkpoints = set.NewCounter(`datastorage_ledger_checkpoints_total`)
	set.NewGauge(`datastorage_ledger_head_seq`, func() float64 { return float64(n.headSeq.Load()) })
	set.NewGauge(`datastorage_ledger_checkpoint_seq`, func() float64 { return float64(n.checkpointSeq.Load()) })
	set.NewGauge(`datastorage_ledger_last_checkpoint_timestamp_seconds`, func() float64 { return float64(n.lastCheckpoint.Load()) })
	return n, nil
}

// PublicKey is the checkpoints' public key; nil without a key.
func (n *Notary) PublicKey() ed25519.PublicKey {
	if n.cfg.Key == nil {
		return nil
	}
	key, err := n.cfg.Key.Key()
	if err != nil {
		return nil
	}
	return key.Public().(ed25519.PublicKey)
}

// CheckpointFile is where checkpoints are appended ("" for none).
func (n *Notary) CheckpointFile() string { return n.cfg.CheckpointFile }

// Run sequences every SequenceInterval and signs a checkpoint every
// CheckpointInterval until ctx ends, then signs a last one (within 5 s), so
// that a replica's orderly stop leaves the head it saw on record. Failures
// (the database down) are logged and counted, and the next tick tries
// again.
func (n *Notary) Run(ctx context.Context) {
	seqTick := time.NewTicker(n.cfg.SequenceInterval)
	defer seqTick.Stop()
	cpTick := time.NewTicker(n.cfg.CheckpointInterval)
	defer cpTick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			if n.cfg.Key != nil {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if _, err := n.Checkpoint(fctx); err != nil {
					n.log.Warn().Err(err).Msg("last ledger checkpoint failed")
				}
				cancel()
			}
			return
		case <-seqTick.C:
			_, err := n.Sequence(ctx)
			if err != nil && ctx.Err() == nil && !failing {
				n.log.Error().Err(err).Msg("ledger sequencing failed; retrying")
			}
			failing = err != nil
		case <-cpTick.C:
			if n.cfg.Key == nil {
				continue
			}
			if _, err := n.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				n.log.Error().Err(err).Msg("ledger checkpoint failed")
			}
		}
	}
}

// Sequence sequences the committed entries once.
func (n *Notary) Sequence(ctx context.Context) (storage.Head, error) {
	k, head, err := n.cfg.Store.SequenceLedger(ctx)
	n.sequenced.Add(k)
	if err != nil {
		n.failures.Inc()
		return head, err
	}
	n.headSeq.Store(head.Seq)
	return head, nil
}

// Checkpoint sequences, then signs the head unless this replica signed the
// same head less than an hour ago; it returns the checkpoint, nil when none
// was due.
func (n *Notary) Checkpoint(ctx context.Context) (*ledger.Checkpoint, error) {
	head, err := n.Sequence(ctx)
	if err != nil {
		return nil, err
	}
	now := n.cfg.Now()
	if head == n.lastSigned && now.Sub(n.signedAt) < unchangedHeadCheckpoint {
		return nil, nil
	}
	c, err := n.Sign(ctx, head)
	if err != nil {
		return nil, err
	}
	n.lastSigned, n.signedAt = head, now
	return &c, nil
}

// Sign signs a checkpoint of head now, and keeps it as every checkpoint is
// kept: the log, the checkpoint file, the database. An export's proof ends
// with one. It is safe for concurrent use; the error says which keeping
// failed (the checkpoint is returned all the same when it was signed).
func (n *Notary) Sign(ctx context.Context, head storage.Head) (ledger.Checkpoint, error) {
	if n.cfg.Key == nil {
		return ledger.Checkpoint{}, errors.New("notary: no checkpoint key")
	}
	key, err := n.cfg.Key.Key()
	if err != nil {
		n.failures.Inc()
		return ledger.Checkpoint{}, err
	}
	if err := n.cfg.Key.LastError(); err != nil {
		n.log.Warn().Err(err).Msg("the checkpoint key file changed to something unusable; signing with the previous key")
	}
	c := ledger.Sign(key, head.Seq, head.Hash, n.cfg.Now())
	line := c.MarshalLine()
	// The log first: it costs nothing and reaches the log system even when
	// the file or the database does not.
	n.log.Info().RawJSON("checkpoint", line[:len(line)-1]).Msg("ledger checkpoint")
	var errs []error
	if n.cfg.CheckpointFile != "" {
		n.fileMu.Lock()
		err := appendLine(n.cfg.CheckpointFile, line)
		n.fileMu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("checkpoint file: %w", err))
		}
	}
	if err := n.cfg.Store.SaveCheckpoint(ctx, c); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		n.failures.Inc()
		return c, err
	}
	n.checkpoints.Inc()
	for { // the highest checkpointed sequence, whoever signs last
		old := n.checkpointSeq.Load()
		if c.Seq <= old || n.checkpointSeq.CompareAndSwap(old, c.Seq) {
			break
		}
	}
	n.lastCheckpoint.Store(c.Time.Unix())
	return c, nil
}

// appendLine appends line to the file at path and fsyncs it: a checkpoint
// reported written survives a crash.
func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
