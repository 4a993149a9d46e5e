package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/kubernaut/datastorage/central/lifecycle"
	"github.com/kubernaut/datastorage/storage"
)

// maintain is `central maintain`: one run of what every serving replica
// does in the background (central/lifecycle): create the partitions ahead,
// drop the expired ones (--retention, legal holds kept), delete the dropped
// partitions' embedding links; then it sequences the ledger, so that the
// drops' anchor entries are in the chain even when no central serves.
// Creating and dropping partitions needs the role that owns the audit
// tables; where the serving role may not change the schema, a CronJob runs
// this as the owner (docs/deploy.md).
func maintain(ctx context.Context, log zerolog.Logger, o *options, stdout io.Writer) error {
	db, err := storage.Open(ctx, storage.Config{DatabaseURL: o.databaseURL, MaxConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	vdb, err := storage.OpenVectors(ctx, storage.Config{DatabaseURL: o.vectorURL, MaxConns: 2}, o.hnsw)
	if err != nil {
		return err
	}
	defer vdb.Close()
	cfg := o.lifecycle
	cfg.Store, cfg.Links, cfg.Logger = db, vdb, log
	m, err := lifecycle.New(cfg)
	if err != nil {
		return err
	}
	if err := m.RunOnce(ctx); err != nil {
		return fmt.Errorf("maintain: %w", err)
	}
	if _, _, err := db.SequenceLedger(ctx); err != nil {
		return fmt.Errorf("maintain: %w", err)
	}
	fmt.Fprintln(stdout, "partitions and retention up to date")
	return nil
}
