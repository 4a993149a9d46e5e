package main

import (
	"bufio"
	"compress/gzip"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kubernaut/datastorage/export"
)

// Exit codes of verify-export.
const (
	exitVerified = 0
	exitRejected = 1
	exitUsage    = 2
)

// verifyExport is `central verify-export FILE --public-key KEY`: it checks
// a signed export offline (plain or gzip; "-" reads stdin) and says what is
// wrong with it. It returns the exit code: 0 good, 1 not, 2 usage.
func verifyExport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("central verify-export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pubPath := fs.String("public-key", "", "the Ed25519 public key (PKIX PEM, as openssl pkey -pubout writes) the export must be signed by")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: central verify-export FILE --public-key KEY\n\n"+
			"Checks an export of GET /api/v1/audit/export (NDJSON, plain or gzip; FILE \"-\" is stdin):\n"+
			"exit 0 when it is complete and signed by KEY, 1 with the problem otherwise, 2 on a usage error.")
		fs.PrintDefaults()
	}
	// FILE may come before the flags or after them.
	var file string
	if len(args) > 0 && (args[0] == "-" || !strings.HasPrefix(args[0], "-")) {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitVerified
		}
		return exitUsage
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if file == "" || *pubPath == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != file) {
		fs.Usage()
		return exitUsage
	}
	pub, err := export.LoadPublicKey(*pubPath)
	if err != nil {
		fmt.Fprintln(stderr, "central verify-export:", err)
		return exitUsage
	}
	t, err := verifyFile(file, stdin, pub)
	if err != nil {
		fmt.Fprintf(stderr, "central verify-export: %s: %v\n", file, err)
		return exitRejected
	}
	since := "the first record"
	if t.Since != nil {
		since = t.Since.Format(time.RFC3339Nano)
	}
	kinds := make([]string, len(t.Kinds))
	for i, k := range t.Kinds {
		kinds[i] = string(k)
	}
	fmt.Fprintf(stdout, "%s: verified: %d records (%s) from %s until %s, exported by %s at %s, signed by key %s\n",
		file, t.Records, strings.Join(kinds, ", "), since, t.Until.Format(time.RFC3339Nano), t.ExportedBy,
		t.ExportedAt.Format(time.RFC3339), t.KeyID)
	return exitVerified
}

func verifyFile(file string, stdin io.Reader, pub ed25519.PublicKey) (*export.Trailer, error) {
	var r io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReader(r)
	// gzip by its magic bytes, whatever the file is called.
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		t, err := export.Verify(zr, pub)
		if err != nil && errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: the gzip stream is cut short", export.ErrTruncated)
		}
		return t, err
	}
	return export.Verify(br, pub)
}
