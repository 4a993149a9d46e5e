package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/internal/tlsconfig"
	"github.com/kubernaut/datastorage/wire"
)

// The operator's commands that talk to a running central through its API,
// with the operator's own service-account token (a service account granted
// export:audit or hold:audit): `central export` and `central holds`.

const exportUsage = `Usage: central export --central-url URL --token-file FILE [--from T] [--until T] [--kind K] [--public-key KEY] [--out FILE]

Streams a signed export of the audits in [--from, --until) (RFC 3339; event
time) from a running central (GET /api/v1/audit/export; the token's
service account needs export:audit) to --out, or standard output. With
--public-key (the export key's public key, PEM) the stream is verified as it
arrives; --out is then written as FILE.partial and renamed to FILE only once
the whole export verified. Check a file later with central verify-export.

Flags:
`

const holdsUsage = `Usage: central holds list [--active | --released] [--json]
       central holds show ID
       central holds place (--remediation ID | --workflow ID) --reason TEXT
       central holds release ID --reason TEXT
each with --central-url URL --token-file FILE [--ca-file FILE] [--server-name NAME]
[--client-cert-file FILE --client-key-file FILE]

Legal holds of a running central (/api/v1/legal-holds; the token's service
account needs hold:audit): a hold keeps every audit of one remediation or
workflow from retention until it is released.

Flags:
`

// apiFlags are what every command that talks to the central's API takes.
type apiFlags struct {
	url, tokenFile, caFile, serverName string
	clientCert, clientKey              string
	timeout                            time.Duration
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "central-url", "", "the central's base URL, e.g. https://datastorage-central.kubernaut-system.svc:8080 (required)")
	fs.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token, e.g. from `kubectl create token SA --audience datastorage`; - reads standard input (required)")
	fs.StringVar(&a.caFile, "ca-file", "", "PEM bundle of the CAs that signed the central's certificate (empty: the system's)")
	fs.StringVar(&a.serverName, "server-name", "", "the name the central's certificate must carry, when the URL names another (a port-forward to localhost)")
	fs.StringVar(&a.clientCert, "client-cert-file", "", "client certificate (PEM) for a central that requires one (--client-ca-file); with --client-key-file")
	fs.StringVar(&a.clientKey, "client-key-file", "", "the client certificate's private key (PEM)")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "bound on each request (an export's stream excepted)")
}

// client is the API client for a; stdin is read for --token-file -.
func (a *apiFlags) client(stdin io.Reader) (*client.Client, error) {
	if a.url == "" || a.tokenFile == "" {
		return nil, usageError{errors.New("--central-url and --token-file are required")}
	}
	cfg := client.Config{BaseURL: strings.TrimSuffix(a.url, "/"), Timeout: a.timeout, MaxRetries: 2}
	if a.tokenFile == "-" {
		tok, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("read the token from standard input: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(tok))
	} else {
		cfg.TokenFile = a.tokenFile
	}
	if strings.HasPrefix(a.url, "https://") {
		tlsCfg, err := tlsconfig.Client(a.caFile, a.clientCert, a.clientKey)
		if err != nil {
			return nil, err
		}
		tlsCfg.ServerName = a.serverName
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
	}
	return client.New(cfg)
}

// exportAudits is `central export`.
func exportAudits(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := commandFlags("central export", exportUsage, stderr)
	var api apiFlags
	api.register(fs)
	from := fs.String("from", "", "first event time included (RFC 3339; empty: the first record)")
	until := fs.String("until", "", "event time excluded (RFC 3339; empty: the central's now)")
	kind := fs.String("kind", "", "remediation or workflow (empty: both)")
	publicKey := fs.String("public-key", "", "verify the stream against this export key (PEM public key) while writing it")
	out := fs.String("out", "-", "file to write (- for standard output)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("export: unexpected argument %q", fs.Arg(0))}
	}
	var q client.ExportQuery
	var err error
	if q.Since, err = parseTimeFlag("from", *from); err != nil {
		return err
	}
	if q.Until, err = parseTimeFlag("until", *until); err != nil {
		return err
	}
	if *kind != "" {
		k, err := wire.ParseKind(*kind)
		if err != nil {
			return usageError{fmt.Errorf("--kind %q: want remediation or workflow", *kind)}
		}
		q.Kind = k
	}
	var pub ed25519.PublicKey
	if *publicKey != "" {
		if pub, err = export.LoadPublicKey(*publicKey); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	c, err := api.client(stdin)
	if err != nil {
		return err
	}
	defer c.Close(ctx)

	w, commit, err := exportTarget(*out, pub != nil, stdout)
	if err != nil {
		return err
	}
	if pub == nil {
		err = c.Export(ctx, q, w)
		return commit(err)
	}
	t, err := c.ExportVerified(ctx, q, w, pub)
	if err := commit(err); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "export: %d records, verified: signed by key %s, exported by %s at %s\n",
		t.Records, t.KeyID, t.ExportedBy, t.ExportedAt.Format(time.RFC3339))
	return nil
}

// exportTarget is where the export goes, and commit, called with the
// export's outcome, which makes it final: standard output as it streams; a
// file written whole; with verification, a FILE.partial renamed to FILE
// only once it verified (and left as .partial, named in the error, if not).
func exportTarget(path string, verified bool, stdout io.Writer) (io.Writer, func(error) error, error) {
	if path == "-" {
		return stdout, func(err error) error { return err }, nil
	}
	tmp := path
	if verified {
		tmp = path + ".partial"
	}
	f, err := os.Create(tmp)
	if err != nil {
		return nil, nil, fmt.Errorf("export: %w", err)
	}
	return f, func(err error) error {
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%w (what arrived is in %s)", err, tmp)
		}
		if tmp != path {
			return os.Rename(tmp, path)
		}
		return nil
	}, nil
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usageError{fmt.Errorf("--%s %q: want RFC 3339, e.g. 2026-11-01T00:00:00Z", name, v)}
	}
	return t, nil
}

// holds is `central holds VERB`.
func holds(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, holdsUsage)
		return usageError{errors.New("holds: say list, show, place or release")}
	}
	verb, args := args[0], args[1:]
	fs := commandFlags("central holds "+verb, holdsUsage, stderr)
	var api apiFlags
	api.register(fs)
	var (
		active, released, asJSON bool
		remediation, workflow    string
		reason                   string
	)
	switch verb {
	case "list":
		fs.BoolVar(&active, "active", false, "only holds in force")
		fs.BoolVar(&released, "released", false, "only released holds")
		fs.BoolVar(&asJSON, "json", false, "one JSON hold per line instead of a table")
	case "show":
	case "place":
		fs.StringVar(&remediation, "remediation", "", "hold the audits of this remediationRequestID")
		fs.StringVar(&workflow, "workflow", "", "hold the audits of this workflowID")
		fs.StringVar(&reason, "reason", "", "why (a case number, a request): kept with the hold (required)")
	case "release":
		fs.StringVar(&reason, "reason", "", "why the hold ends: kept with the hold (required)")
	default:
		fmt.Fprint(stderr, holdsUsage)
		return usageError{fmt.Errorf("holds: unknown verb %q", verb)}
	}
	// The hold's ID may come before the flags or after them.
	var id string
	if (verb == "show" || verb == "release") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if id == "" && fs.NArg() > 0 && (verb == "show" || verb == "release") {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError{fmt.Errorf("holds %s: unexpected argument %q", verb, fs.Arg(0))}
	}
	switch {
	case (verb == "show" || verb == "release") && id == "":
		return usageError{fmt.Errorf("holds %s: which hold? give its ID (holds list shows them)", verb)}
	case (verb == "place" || verb == "release") && reason == "":
		return usageError{fmt.Errorf("holds %s: --reason is required", verb)}
	case verb == "place" && (remediation == "") == (workflow == ""):
		return usageError{errors.New("holds place: give one of --remediation or --workflow")}
	case active && released:
		return usageError{errors.New("holds list: --active and --released exclude each other")}
	}
	c, err := api.client(stdin)
	if err != nil {
		return err
	}
	defer c.Close(ctx)

	switch verb {
	case "list":
		var q client.HoldQuery
		if active || released {
			q.Active = &active
		}
		return listHolds(ctx, c, q, asJSON, stdout)
	case "show":
		h, err := c.Hold(ctx, id)
		if err != nil {
			return err
		}
		return printHold(stdout, h)
	case "place":
		h, err := c.PlaceHold(ctx, wire.PlaceHoldRequest{RemediationRequestID: remediation, WorkflowID: workflow, Reason: reason})
		if err != nil {
			return err
		}
		return printHold(stdout, h)
	default: // release
		h, err := c.ReleaseHold(ctx, id, reason)
		if err != nil {
			return err
		}
		return printHold(stdout, h)
	}
}

func listHolds(ctx context.Context, c *client.Client, q client.HoldQuery, asJSON bool, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "ID\tHOLDS\tPLACED BY\tPLACED AT\tSTATE\tREASON")
	}
	for h, err := range c.Holds(ctx, q) {
		if err != nil {
			tw.Flush()
			return err
		}
		if asJSON {
			if err := json.MarshalWrite(stdout, h); err != nil {
				return err
			}
			fmt.Fprintln(stdout)
			continue
		}
		state := "active"
		if !h.Active {
			state = "released " + h.ReleasedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, holdTarget(h), h.PlacedBy, h.PlacedAt.UTC().Format(time.RFC3339), state, h.Reason)
	}
	return tw.Flush()
}

func holdTarget(h *wire.LegalHold) string {
	if h.WorkflowID != "" {
		return "workflow " + h.WorkflowID
	}
	return "remediation " + h.RemediationRequestID
}

// printHold writes h as indented JSON: what the central stored.
func printHold(w io.Writer, h *wire.LegalHold) error {
	if err := json.MarshalWrite(w, h, jsontext.WithIndent("  ")); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}
