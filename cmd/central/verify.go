package main

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/ledger"
)

const verifyUsage = `Usage: central verify-export FILE --public-key KEY [--checkpoint-public-key CKEY]

Checks an audit export (GET /api/v1/audit/export, plain or gzip) offline:
the trailer's Ed25519 signature with KEY, the record count, the digest of
every record line, nothing cut off or appended, the records' order and
range. FILE "-" reads standard input. With CKEY, the ledger's checkpoint
key, also the export's ledger proof (a central with --checkpoint-key-file
writes one): every record is as the ledger recorded it, in a chain that
reaches a checkpoint signed by CKEY (FILE must then be a file).

Exit status: 0 valid (a one-line summary on standard output), 1 invalid or
unreadable (what is wrong and where on standard error), 2 usage error.

Flags:
`

// commandFlags is the flag set of an operator's command: its errors and
// --help go to stderr, the usage text first.
func commandFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// usageError is a command line the command cannot run: exit status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// verifyExport is `central verify-export FILE --public-key KEY`.
func verifyExport(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := commandFlags("central verify-export", verifyUsage, stderr)
	publicKey := fs.String("public-key", "", "the signing key's public key: PEM, as `openssl pkey -in KEY -pubout` writes it (required)")
	checkpointKey := fs.String("checkpoint-public-key", "", "the ledger checkpoint key's public key (PEM): also check the export's ledger proof")
	file, err := parseFileAndFlags(fs, args)
	if err != nil {
		return err
	}
	if *publicKey == "" {
		return usageError{errors.New("verify-export: --public-key is required (central verify-export --help)")}
	}
	if *checkpointKey != "" && file == "-" {
		return usageError{errors.New("verify-export: --checkpoint-public-key reads FILE twice: give a file, not -")}
	}
	pub, err := export.LoadPublicKey(*publicKey)
	if err != nil {
		return fmt.Errorf("verify-export: %w", err)
	}
	var cpub ed25519.PublicKey
	if *checkpointKey != "" {
		if cpub, err = export.LoadPublicKey(*checkpointKey); err != nil {
			return fmt.Errorf("verify-export: checkpoint key: %w", err)
		}
	}
	in, name := stdin, "standard input"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("verify-export: %w", err)
		}
		defer f.Close()
		in, name = f, file
	}
	t, err := export.Verify(in, pub)
	if err != nil {
		return fmt.Errorf("verify-export: %s: %w", name, err)
	}
	if cpub == nil {
		fmt.Fprintf(stdout, "%s: valid: %s\n", name, summary(t))
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("verify-export: %w", err)
	}
	defer f.Close()
	p, err := ledger.VerifyExportProof(f, cpub)
	if err != nil {
		return fmt.Errorf("verify-export: %s: %w", name, err)
	}
	fmt.Fprintf(stdout, "%s: valid: %s; ledger proof: %d records in %d entries up to checkpoint %d signed %s by key %s\n",
		name, summary(t), p.Records, p.Entries, p.Checkpoint.Seq, stamp(p.Checkpoint.Time), p.Checkpoint.KeyID)
	return nil
}

// parseFileAndFlags parses the flags before and after the one FILE
// argument (the flag package stops at the first non-flag).
func parseFileAndFlags(fs *flag.FlagSet, args []string) (string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", usageError{fmt.Errorf("verify-export: %w", err)}
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if len(files) != 1 {
		return "", usageError{fmt.Errorf("verify-export: want one FILE, got %d (central verify-export --help)", len(files))}
	}
	return files[0], nil
}

// summary is what a valid export holds, in one line.
func summary(t *export.Trailer) string {
	kinds := make([]string, len(t.Kinds))
	for i, k := range t.Kinds {
		kinds[i] = string(k)
	}
	span := "before " + stamp(t.Until)
	if t.Since != nil {
		span = "from " + stamp(*t.Since) + " to before " + stamp(t.Until)
	}
	return fmt.Sprintf("%d records (%s) with occurredAt %s, exported at %s by %s, signed by key %s",
		t.Records, strings.Join(kinds, ", "), span, stamp(t.ExportedAt), t.ExportedBy, t.KeyID)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
