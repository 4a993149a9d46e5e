// Command agent is the audit-trail sidecar: it accepts the central's
// single-record API on a loopback port, stores each record durably before
// answering 201, and forwards the records to the central in batches.
// "agent deadletter list|delete|replay" manages the running agent's dead
// letters from inside the pod.
// Flags and wiring only; the behaviour lives in package agent and below.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/kubernaut/datastorage/agent"
	"github.com/kubernaut/datastorage/agent/forward"
	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m := Main{Stdout: os.Stdout, Stderr: os.Stderr}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// Main runs the agent; its fields make it testable. Flags fall back to
// AGENT_* environment variables (internal/cli).
type Main struct {
	Stdout, Stderr io.Writer
}

type options struct {
	listen, metricsListen, centralURL, tokenFile, dataDir string
	centralCAFile, clientCertFile, clientKeyFile          string
	logLevel, logFormat                                   string
	insecure, allowRemoteWrites                           bool
	maxBufferBytes                                        int64
	batchMaxRecords, batchMaxBytes                        int
	linger, shutdownGrace, accessRefresh                  time.Duration
}

// parse reads flags, each defaulting to its environment variable, and
// checks what the packages' own Validate cannot phrase in flag terms.
func (m *Main) parse(args []string) (options, error) {
	fs := cli.NewFlagSet("agent", m.Stderr)
	var o options
	fs.StringVar(&o.listen, "listen", "AGENT_LISTEN", agent.DefaultListen, "API address, loopback unless --allow-remote-writes (the pod shares it with the controller)")
	fs.BoolVar(&o.allowRemoteWrites, "allow-remote-writes", "AGENT_ALLOW_REMOTE_WRITES", false, "allow a non-loopback --listen: whoever reaches it writes audit records under the pod's identity")
	fs.StringVar(&o.metricsListen, "metrics-listen", "AGENT_METRICS_LISTEN", agent.DefaultMetricsListen, `address of /metrics, /healthz, /readyz ("-": off)`)
	fs.StringVar(&o.centralURL, "central-url", "AGENT_CENTRAL_URL", "", "base URL of the central data storage service, https unless --insecure (required)")
	fs.StringVar(&o.centralCAFile, "central-ca-file", "AGENT_CENTRAL_CA_FILE", "", "PEM bundle of the CAs trusted for an https central, re-read when it changes (empty: system roots)")
	fs.StringVar(&o.clientCertFile, "client-cert-file", "AGENT_CLIENT_CERT_FILE", "", "PEM client certificate presented to an https central that requires one (--client-ca-file there), re-read when it changes; with --client-key-file (empty: none)")
	fs.StringVar(&o.clientKeyFile, "client-key-file", "AGENT_CLIENT_KEY_FILE", "", "PEM private key of --client-cert-file, re-read with it")
	fs.BoolVar(&o.insecure, "insecure", "AGENT_INSECURE", false, "allow a plain http:// --central-url (the bearer token then crosses the network unencrypted)")
	fs.StringVar(&o.tokenFile, "token-file", "AGENT_TOKEN_FILE", "", "projected service-account token, re-read when rotated (empty: no Authorization)")
	fs.StringVar(&o.dataDir, "data-dir", "AGENT_DATA_DIR", "", "directory of the durable buffer (required)")
	fs.Int64Var(&o.maxBufferBytes, "max-buffer-bytes", "AGENT_MAX_BUFFER_BYTES", queue.DefaultMaxBytes, "buffer limit in bytes; beyond it writes get 503")
	fs.IntVar(&o.batchMaxRecords, "batch-max-records", "AGENT_BATCH_MAX_RECORDS", forward.DefaultBatchMaxRecords, "records per forwarded batch")
	fs.IntVar(&o.batchMaxBytes, "batch-max-bytes", "AGENT_BATCH_MAX_BYTES", forward.DefaultBatchMaxBytes, "bytes per forwarded batch (before compression)")
	fs.DurationVar(&o.linger, "linger", "AGENT_LINGER", forward.DefaultLinger, "how long a partial batch waits for more records")
	fs.DurationVar(&o.accessRefresh, "access-refresh", "AGENT_ACCESS_REFRESH", forward.DefaultAccessRefresh,
		"how often to ask the central which audit kinds this identity may write (writes of others get 403); 0: never ask, accept every kind")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", "AGENT_SHUTDOWN_GRACE", 10*time.Second, "on SIGTERM, how long to keep forwarding before exiting")
	fs.StringVar(&o.logLevel, "log-level", "AGENT_LOG_LEVEL", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "AGENT_LOG_FORMAT", "json", "json or console")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	flagErr := func(name, msg string) error { return fmt.Errorf("--%s (or %s) %s", name, fs.Env(name), msg) }
	switch {
	case o.centralURL == "":
		return o, flagErr("central-url", "is required")
	case o.dataDir == "":
		return o, flagErr("data-dir", "is required")
	case o.maxBufferBytes <= 0:
		return o, flagErr("max-buffer-bytes", "must be positive")
	case o.shutdownGrace < 0:
		return o, flagErr("shutdown-grace", "must not be negative")
	case o.accessRefresh < 0:
		return o, flagErr("access-refresh", "must not be negative (0 turns the question off)")
	case !o.allowRemoteWrites && !agent.IsLoopback(o.listen):
		return o, flagErr("listen", fmt.Sprintf("%s is not a loopback address: whoever reaches it writes audit records "+
			"under the pod's identity; use 127.0.0.1:PORT, or pass --allow-remote-writes (%s=true)", o.listen, fs.Env("allow-remote-writes")))
	}
	u, err := url.Parse(o.centralURL)
	if err != nil {
		return o, flagErr("central-url", fmt.Sprintf("%q is not a URL", o.centralURL))
	}
	if u.Scheme == "http" && !o.insecure {
		return o, fmt.Errorf("--central-url %s is plain http: the bearer token would cross the network unencrypted; "+
			"use an https URL (with --central-ca-file if its CA is private) or pass --insecure (%s=true)",
			o.centralURL, fs.Env("insecure"))
	}
	switch {
	case o.clientCertFile != "" && o.clientKeyFile == "":
		return o, flagErr("client-key-file", "is required with --client-cert-file")
	case o.clientKeyFile != "" && o.clientCertFile == "":
		return o, flagErr("client-cert-file", "is required with --client-key-file")
	case o.clientCertFile != "" && u.Scheme != "https":
		return o, flagErr("client-cert-file", fmt.Sprintf("needs an https --central-url, not %s", o.centralURL))
	}
	return o, nil
}

// Run starts the agent and blocks until ctx ends, then shuts down: stop
// accepting, forward what it can within the grace period, close the buffer.
// "agent deadletter VERB" is an operator's command to the running agent
// instead (deadletter.go).
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "deadletter" {
		return m.deadLetter(ctx, args[1:])
	}
	o, err := m.parse(args)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(m.Stderr, o.logLevel, o.logFormat, "agent")
	if err != nil {
		return err
	}
	set := metrics.NewSet()

	serviceAccount := ""
	if o.tokenFile != "" {
		if tok, err := os.ReadFile(o.tokenFile); err != nil {
			log.Warn().Err(err).Msg("token file unreadable at start: Idempotency-Key IDs use no service account")
		} else {
			serviceAccount = agent.ServiceAccountFromToken(string(tok))
		}
	}

	q, err := queue.Open(queue.Config{Dir: o.dataDir, MaxBytes: o.maxBufferBytes, Logger: log, Metrics: set})
	if err != nil {
		return err
	}
	accessRefresh := o.accessRefresh
	if accessRefresh == 0 {
		accessRefresh = -1 // the flag's 0 is "never"; the Config's zero is the default
	}
	// The forwarder comes first: the server asks its Access on every write.
	fwd, err := forward.New(forward.Config{
		CentralURL: o.centralURL, Insecure: o.insecure, CAFile: o.centralCAFile, TokenFile: o.tokenFile,
		ClientCertFile: o.clientCertFile, ClientKeyFile: o.clientKeyFile,
		BatchMaxRecords: o.batchMaxRecords, BatchMaxBytes: o.batchMaxBytes, Linger: o.linger,
		AccessRefresh: accessRefresh, Logger: log, Metrics: set,
	}, q)
	if err != nil {
		return errors.Join(err, q.Close(context.Background()))
	}
	// On a failed start nothing was accepted: stop forwarding at once rather
	// than drain a backlog first.
	abandon := func(err error) error {
		now, cancel := context.WithCancel(context.Background())
		cancel()
		return errors.Join(err, fwd.Close(now), q.Close(context.Background()))
	}
	srv, err := agent.NewServer(agent.Config{
		Listen: o.listen, AllowRemoteWrites: o.allowRemoteWrites, MetricsListen: o.metricsListen, ServiceAccount: serviceAccount,
		Access: fwd.Access(), Logger: log, Metrics: set,
	}, q)
	if err != nil {
		return abandon(err)
	}
	if err := srv.Start(); err != nil {
		return abandon(err)
	}
	log.Info().Str("service_account", serviceAccount).Str("data_dir", o.dataDir).Msg("agent started")

	<-ctx.Done()
	log.Info().Dur("grace", o.shutdownGrace).Msg("shutting down")
	grace, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancel()
	errSrv := srv.Close(grace)
	errFwd := fwd.Close(grace)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	errQ := q.Close(closeCtx)
	d := q.Depth()
	log.Info().Int64("records_left", d.Records).Int64("bytes_left", d.Bytes).Msg("agent stopped")
	return errors.Join(errSrv, errFwd, errQ)
}
