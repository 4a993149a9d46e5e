package chaos

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kubernaut/datastorage/ledger"
	"github.com/kubernaut/datastorage/storage"
)

// The ledger under chaos (issue 18): the central writes it as always, signs
// a checkpoint every second to a file, and is killed mid-commit with the
// rest. After the run, once the restarted central has sequenced every
// committed entry, the whole trail must verify against every checkpoint
// signed during the run: no gap, no fork, every row its entry recorded.

// LedgerReport is what the verification of the ledger found after the run.
type LedgerReport struct {
	Entries     int64    `json:"entries"`
	Rows        int64    `json:"rows"`
	Checkpoints int      `json:"checkpoints"`
	Failures    []string `json:"failures"` // the first few
	OK          bool     `json:"ok"`
}

func (r *LedgerReport) note() string {
	if r.OK {
		return fmt.Sprintf("ledger: %d entries and %d rows verified against %d checkpoints signed during the run", r.Entries, r.Rows, r.Checkpoints)
	}
	return fmt.Sprintf("ledger: DOES NOT VERIFY: %v", r.Failures)
}

// checkpointKey writes a checkpoint signing key in dir and returns its
// path and public key.
func checkpointKey(dir string) (string, ed25519.PublicKey, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "checkpoint.key")
	return path, pub, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// checkLedger waits (up to within) for the central to sequence every
// committed entry, then verifies the whole ledger against the checkpoints
// in checkpointFile.
func checkLedger(ctx context.Context, dsn, checkpointFile string, pub ed25519.PublicKey, within time.Duration) (*LedgerReport, error) {
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: dsn, MaxConns: 2})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	deadline := time.Now().Add(within)
	for {
		n, err := db.LedgerPending(ctx)
		if err != nil {
			return nil, err
		}
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	f, err := os.Open(checkpointFile)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	cps, err := ledger.ReadCheckpoints(f, pub)
	f.Close()
	if err != nil {
		return nil, err
	}
	r, err := db.VerifyLedger(ctx, storage.VerifyOptions{Checkpoints: cps})
	if err != nil {
		return nil, err
	}
	out := &LedgerReport{Entries: r.Entries, Rows: r.Rows, Checkpoints: r.Checkpoints, OK: r.OK()}
	for i, f := range r.Failures {
		if i == 5 {
			break
		}
		out.Failures = append(out.Failures, f.String())
	}
	return out, nil
}
