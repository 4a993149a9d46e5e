package readload

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// CentralConfig configures the central that Measure starts with
// ViaCentral: the real binary, serving the loaded database with static
// tokens, a reader allowed read:audit and export:audit, a read budget no
// measurement reaches, and a fresh Ed25519 export key.
type CentralConfig struct {
	// BinDir holds prebuilt central and agent binaries (bench's
	// --bin-dir). Empty: go build them into a temporary directory.
	BinDir string
	// RepoRoot is the module's root, to build in. Empty: found from the
	// working directory.
	RepoRoot string
	// PlainExport asks for the export without compression. By default it
	// asks for gzip, as the Go client's transport does.
	PlainExport bool
}

// The reader the central is started with, in loadgen.Namespace.
const (
	readerSA    = "readload-sa"
	readerToken = "readload-static-" + readerSA
)

// The central's read budget: far beyond any measurement here, as bench's
// deployments (the budget is not what is measured).
const (
	centralReadRate  = "1000000000"
	centralReadBurst = "100000"
)

// readTimeout bounds one page or timeline request; the central's own query
// deadline is 10 s.
const readTimeout = 30 * time.Second

// centralReads reads through a central's HTTP API, as readerSA. Requests
// go one at a time on a kept-alive connection; the JSON is decoded after
// the clock stopped.
type centralReads struct {
	ws       *loadgen.Workspace
	p        *harness.Process
	base     string
	http     *http.Client
	pub      ed25519.PublicKey
	gzip     bool
	body     bytes.Buffer // the last answer, reused
	progress io.Writer
}

func startCentral(ctx context.Context, databaseURL string, cfg CentralConfig, progress io.Writer) (_ *centralReads, err error) {
	ws, err := loadgen.NewWorkspace(ctx, "readload", cfg.RepoRoot, cfg.BinDir, progress)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ws.Close()
		}
	}()
	tokenFile, authzFile, err := writeReaderCredentials(ws.Dir)
	if err != nil {
		return nil, err
	}
	keyFile, pub, err := writeExportKey(ws.Dir)
	if err != nil {
		return nil, err
	}
	api, err := freeport.Free()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freeport.Free()
	if err != nil {
		return nil, err
	}
	base := "http://" + api
	p, err := harness.Start(ctx, harness.Command{Name: "central", Path: ws.Bins.Central, Env: []string{"DATABASE_URL=" + databaseURL},
		Args: []string{"serve", "--listen", api, "--metrics-listen", metricsAddr, "--auth", "static", "--token-file", tokenFile,
			"--authz-file", authzFile, "--read-rate", centralReadRate, "--read-burst", centralReadBurst,
			"--export-key-file", keyFile, "--log-level", "warn"},
		Ready: base + "/readyz"})
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DisableCompression = true // the export asks for gzip itself, and keeps it
	return &centralReads{ws: ws, p: p, base: base, http: &http.Client{Transport: tr}, pub: pub,
		gzip: !cfg.PlainExport, progress: progress}, nil
}

// writeReaderCredentials writes the central's static token CSV and
// allow-list into dir: readerToken, readerSA's, allowed to read and export.
func writeReaderCredentials(dir string) (tokenFile, authzFile string, err error) {
	tokenFile, authzFile = filepath.Join(dir, "tokens.csv"), filepath.Join(dir, "authz.yaml")
	csv := fmt.Sprintf("%s,system:serviceaccount:%s:%s,uid-readload,\"system:serviceaccounts\"\n",
		readerToken, loadgen.Namespace, readerSA)
	authz := fmt.Sprintf("serviceAccounts:\n- name: %s\n  namespace: %s\n  actions: [read:audit, export:audit]\n",
		readerSA, loadgen.Namespace)
	if err := os.WriteFile(tokenFile, []byte(csv), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(authzFile, []byte(authz), 0o600); err != nil {
		return "", "", err
	}
	return tokenFile, authzFile, nil
}

// writeExportKey writes a new Ed25519 key into dir as the central reads
// it (PKCS#8 PEM) and returns its public half.
func writeExportKey(dir string) (string, ed25519.PublicKey, error) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "export.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", nil, err
	}
	return path, pub, nil
}

func (c *centralReads) String() string {
	return fmt.Sprintf("central %s (pid %d, binary %s)", c.base, c.p.Pid(), c.ws.Bins.Central)
}

func (c *centralReads) close() {
	if err := c.p.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		fmt.Fprintf(c.progress, "readload: central: %v\n%s\n", err, tail(c.p.Logs()))
	}
	c.ws.Close()
}

func tail(s string) string {
	const n = 4 << 10
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// get sends GET path as the reader and reads the answer into c.body; it
// returns the time from sending to the answer's last byte. Any status but
// 200 is an error.
func (c *centralReads) get(ctx context.Context, path string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+readerToken)
	req.Header.Set("Accept", "application/json")
	c.body.Reset()
	t0 := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("readload: GET %s: %w", path, err)
	}
	_, err = c.body.ReadFrom(resp.Body)
	took := time.Since(t0)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("readload: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("readload: GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(c.body.Bytes()))
	}
	return took, nil
}

func (c *centralReads) timeline(ctx context.Context, rr string) (time.Duration, int, error) {
	took, err := c.get(ctx, "/api/v1/remediations/"+url.PathEscape(rr)+"/timeline")
	if err != nil {
		return 0, 0, err
	}
	var tl wire.Timeline
	if err := json.Unmarshal(c.body.Bytes(), &tl); err != nil {
		return 0, 0, fmt.Errorf("readload: timeline of %s: %w", rr, err)
	}
	return took, len(tl.Events), nil
}

// page reads q as GET /api/v1/audit/{kind}; q.After becomes the cursor the
// central would have given for it.
func (c *centralReads) page(ctx context.Context, q storage.AuditQuery) (time.Duration, int, error) {
	v := url.Values{}
	for name, value := range q.Filters {
		v.Set(name, value)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Ascending {
		v.Set("order", "asc")
	}
	v.Set("limit", strconv.Itoa(q.Limit))
	if q.After != nil {
		v.Set("cursor", cursorOf(&q))
	}
	took, err := c.get(ctx, "/api/v1/audit/"+url.PathEscape(string(q.Kind))+"?"+v.Encode())
	if err != nil {
		return 0, 0, err
	}
	var page wire.AuditPage
	if err := json.Unmarshal(c.body.Bytes(), &page); err != nil {
		return 0, 0, fmt.Errorf("readload: %s page: %w", q.Kind, err)
	}
	return took, len(page.Records), nil
}

// cursorOf is the cursor of q's page after q.After, in the format of
// central/cursor.go (version 1): base64url of version, the query's
// fingerprint, the position's event time in Unix µs, and its writer and ID
// with their lengths. The central does not sign cursors (a made one only
// moves the caller's own query elsewhere in what it may read), so a
// measurement can start a page anywhere, as storage's After does. If that
// format changes, the central refuses these with 400 and the measurement
// stops.
func cursorOf(q *storage.AuditQuery) string {
	var fp bytes.Buffer
	fp.WriteString("v1\x00" + string(q.Kind))
	for _, k := range slices.Sorted(maps.Keys(q.Filters)) {
		fp.WriteString("\x00" + k + "=" + q.Filters[k])
	}
	for _, t := range []time.Time{q.Since, q.Until} {
		fp.WriteString("\x00")
		if !t.IsZero() {
			fp.WriteString(strconv.FormatInt(t.UnixMicro(), 10))
		}
	}
	fp.WriteString("\x00" + strconv.FormatBool(q.Ascending))
	sum := sha256.Sum256(fp.Bytes())

	a := q.After
	b := []byte{1}
	b = append(b, sum[:8]...)
	b = binary.BigEndian.AppendUint64(b, uint64(a.OccurredAt.UnixMicro()))
	b = binary.AppendUvarint(b, uint64(len(a.ServiceAccount)))
	b = append(b, a.ServiceAccount...)
	b = binary.AppendUvarint(b, uint64(len(a.ID)))
	b = append(b, a.ID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// export asks the central for q's export (GET /api/v1/audit/export), gzip
// unless PlainExport, and writes the answer as received into a file, which
// export.Verify then reads: the clock measures the central, not this
// process's decoding. The central's RSS is sampled from the first record
// line's arrival to the answer's end (its last rows and the trailer come
// in one flush).
func (c *centralReads) export(ctx context.Context, q storage.ExportQuery) (*ExportRate, error) {
	v := url.Values{}
	switch {
	case len(q.Kinds) == 1:
		v.Set("kind", string(q.Kinds[0]))
	case slices.Equal(q.Kinds, []wire.Kind{wire.KindRemediation, wire.KindWorkflow}):
		// The API's default: both, in this order.
	default:
		return nil, fmt.Errorf("readload: the export API exports one kind or both in the order remediation, workflow, not %v", q.Kinds)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	f, err := os.CreateTemp(c.ws.Dir, "export-*.ndjson")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/audit/export?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+readerToken)
	req.Header.Set("Accept", "application/x-ndjson")
	if c.gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}

	central := proc(strconv.Itoa(c.p.Pid()))
	e := &ExportRate{Process: fmt.Sprintf("central (pid %d)", c.p.Pid()), Gzip: c.gzip}
	cpu0, err := central.cpu()
	if err != nil {
		return nil, err
	}
	var rss *rssSampler
	first := &firstLine{gzip: c.gzip, seen: func() { rss = sampleRSS(central) }}
	out := bufio.NewWriterSize(f, 1<<20)
	t0 := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("readload: export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("readload: export: %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != c.gzip {
		return nil, fmt.Errorf("readload: export: Content-Encoding %q, gzip asked: %t", got, c.gzip)
	}
	e.Received, err = io.CopyBuffer(io.MultiWriter(out, first), resp.Body, make([]byte, 256<<10))
	e.Elapsed = time.Since(t0)
	if rss != nil {
		if rerr := rss.finish(e); err == nil {
			err = rerr
		}
	}
	if cpu1, cerr := central.cpu(); cerr == nil {
		e.CPU = cpu1 - cpu0
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("readload: export: %w", err)
	}
	if rss == nil {
		return nil, errors.New("readload: export: the answer has no line")
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	t1 := time.Now()
	e.Trailer, err = export.Verify(f, c.pub)
	e.VerifyElapsed = time.Since(t1)
	if err != nil {
		return nil, fmt.Errorf("readload: export of %d bytes fails verification: %w", e.Received, err)
	}
	if want := readerQualifiedSA(); e.Trailer.ExportedBy != want {
		return nil, fmt.Errorf("readload: export made by %q, not %q", e.Trailer.ExportedBy, want)
	}
	e.Rows = e.Trailer.Records
	return e, nil
}

func readerQualifiedSA() string { return loadgen.Namespace + "/" + readerSA }

// firstLine watches an answer go by and calls seen once when the first
// line of its content is complete. Through gzip it decompresses what has
// arrived until then, and nothing after.
type firstLine struct {
	gzip bool
	seen func()
	done bool
	buf  bytes.Buffer // gzip: the answer so far
}

func (w *firstLine) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	content := p
	if w.gzip {
		w.buf.Write(p)
		zr, err := gzip.NewReader(bytes.NewReader(w.buf.Bytes()))
		if err != nil {
			return len(p), nil // the header is not all here yet
		}
		// What the flushes so far decode to; the error is the end of what
		// has arrived.
		content, _ = io.ReadAll(zr)
	}
	if bytes.IndexByte(content, '\n') >= 0 {
		w.done = true
		w.buf = bytes.Buffer{}
		w.seen()
	}
	return len(p), nil
}
