package export_test

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
	"github.com/kubernaut/datastorage/wire"
)

// A valid export of 4 remediation and 3 workflow records: lines 1-7, the
// trailer on line 8.
func sample(t *testing.T) (data []byte, key ed25519.PrivateKey) {
	key = newKey(t)
	return write(t, entries(4, 3), trailer(), key), key
}

// edit returns data with line n (1-based) replaced by f of it.
func edit(data []byte, n int, f func(string) string) []byte {
	ls := lines(data)
	ls[n-1] = []byte(f(string(ls[n-1])))
	return bytes.Join(ls, nil)
}

func without(data []byte, n int) []byte {
	ls := lines(data)
	return bytes.Join(append(ls[:n-1:n-1], ls[n:]...), nil)
}

// handMade builds an export from the format as doc.go describes it, not
// with the Writer: the record lines given, then the trailer line whose
// digest, count and key ID are computed here and whose JSON is signed.
func handMade(t *testing.T, records []string, trailerJSON func(records int, digest, keyID string) string, key ed25519.PrivateKey) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range records {
		b.WriteString(r + "\n")
	}
	sum := sha256.Sum256(b.Bytes())
	der := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, pubOf(key)...)
	id := sha256.Sum256(der)
	tj := trailerJSON(len(records), "sha256:"+hex.EncodeToString(sum[:]), hex.EncodeToString(id[:8]))
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(tj)))
	fmt.Fprintf(&b, `{"trailer":%s,"signature":"%s"}`+"\n", tj, sig)
	return b.Bytes()
}

func recordLines(t *testing.T, es []wire.AuditEntry) []string {
	var out []string
	for i := range es {
		b, err := json.Marshal(&es[i])
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}

func simpleTrailer(kinds, since string) func(int, string, string) string {
	return func(n int, digest, keyID string) string {
		return fmt.Sprintf(`{"format":"kubernaut-audit-export/v1","records":%d,"digest":"%s","kinds":%s,%s"until":"2026-11-04T09:00:00Z",`+
			`"exportedAt":"2026-11-04T10:00:00Z","exportedBy":"kubernaut-system/auditor","keyID":"%s"}`, n, digest, kinds, since, keyID)
	}
}

func TestVerify_AcceptsAnExportMadeByHandFromTheDocumentedFormat(t *testing.T) {
	key := newKey(t)
	data := handMade(t, recordLines(t, entries(2, 2)), simpleTrailer(`["remediation","workflow"]`, `"since":"2026-11-03T09:00:00Z",`), key)
	tr, err := export.Verify(bytes.NewReader(data), pubOf(key))
	require.NoError(t, err)
	assert.Equal(t, int64(4), tr.Records)
	// The Writer writes the same bytes.
	assert.Equal(t, string(write(t, entries(2, 2), trailer(), key)), string(data))
}

func TestVerify_SaysWhatIsWrongAndWhere(t *testing.T) {
	data, key := sample(t)
	pub := pubOf(key)
	for _, tc := range []struct {
		name  string
		data  []byte
		kind  error
		line  int64
		texts []string
	}{
		{"a changed byte inside a value", edit(data, 3, func(s string) string { return strings.Replace(s, "payments-api", "payments-apj", 1) }),
			export.ErrAltered, 0, []string{"record lines altered, inserted, removed or reordered", "their digest is sha256:"}},
		{"a changed byte that breaks the JSON", edit(data, 3, func(s string) string { return strings.Replace(s, `{"kind"`, `{"kind'`, 1) }),
			export.ErrMalformed, 3, []string{"line 3 is not JSON"}},
		{"a changed member name", edit(data, 2, func(s string) string { return strings.Replace(s, `"alertName"`, `"alertNamf"`, 1) }),
			export.ErrMalformed, 2, []string{"line 2 is not an audit record", "alertNamf"}},
		{"a record without its body", edit(data, 5, func(s string) string { return s[:strings.Index(s, `,"workflow"`)] + "}\n" }),
			export.ErrMalformed, 5, []string{"line 5 is not an audit record: a workflow record needs a workflow member"}},
		{"a removed line", without(data, 2),
			export.ErrAltered, 0, []string{"the trailer counts 7 records, the file has 6: record lines were removed or inserted"}},
		{"an inserted copy of a line", edit(data, 3, func(s string) string { return s + s }),
			export.ErrAltered, 4, []string{"counts 7 records, the file has 8", "first sign of it: line 4 repeats the record of line 3"}},
		{"a line moved to another kind's run", edit(without(data, 2), 6, func(s string) string { return s + string(lines(data)[1]) }),
			export.ErrAltered, 7, []string{"record lines altered", "line 7: a remediation record after workflow records, but the remediation records began at line 1"}},
		{"two lines swapped", edit(edit(data, 2, func(string) string { return string(lines(data)[2]) }), 3, func(string) string { return string(lines(data)[1]) }),
			export.ErrAltered, 3, []string{"record lines altered, inserted, removed or reordered", "line 3: occurredAt 2026-11-03T09:00:01Z is before line 2's 2026-11-03T09:00:02Z"}},
		{"cut mid-line", data[:len(data)-len(lines(data)[7])-10],
			export.ErrTruncated, 7, []string{"truncated: line 7 is cut short (no newline) and no trailer follows"}},
		{"cut at a line boundary", bytes.Join(lines(data)[:5], nil),
			export.ErrTruncated, 5, []string{"truncated after line 5: no trailer"}},
		{"the trailer removed", without(data, 8),
			export.ErrTruncated, 7, []string{"truncated after line 7: no trailer"}},
		{"cut inside the trailer", data[:len(data)-40],
			export.ErrTruncated, 8, []string{"the trailer, line 8, is cut short"}},
		{"empty", nil, export.ErrTruncated, 0, []string{"empty: no records and no trailer"}},
		{"an export that failed part way", append(bytes.Join(lines(data)[:3], nil),
			`{"error":"service_unavailable","message":"export failed after 3 records; retry it","correlation_id":"req-0123"}`+"\n"...),
			export.ErrTruncated, 4, []string{"the export failed after 3 records (line 4 says: service_unavailable: export failed after 3 records; retry it (correlation ID req-0123))"}},
		{"the trailer's count altered", edit(data, 8, func(s string) string { return strings.Replace(s, `"records":7`, `"records":6`, 1) }),
			export.ErrAltered, 8, []string{"the trailer (line 8) was altered: its signature does not verify with key " + export.KeyID(pub)}},
		{"the trailer's range altered", edit(data, 8, func(s string) string { return strings.Replace(s, `"until":"2026-11-04`, `"until":"2026-11-05`, 1) }),
			export.ErrAltered, 8, []string{"the trailer (line 8) was altered"}},
		{"the signature altered", edit(data, 8, func(s string) string {
			i := strings.Index(s, `"signature":"`) + len(`"signature":"`)
			c := map[bool]string{true: "B", false: "A"}[s[i] == 'A']
			return s[:i] + c + s[i+1:]
		}), export.ErrAltered, 8, []string{"the trailer (line 8) was altered"}},
		{"an unknown trailer member", edit(data, 8, func(s string) string { return strings.Replace(s, `{"format"`, `{"note":"x","format"`, 1) }),
			export.ErrMalformed, 8, []string{"line 8 is not a valid trailer", "note"}},
		{"a duplicate trailer member", edit(data, 8, func(s string) string { return strings.Replace(s, `{"format"`, `{"records":7,"format"`, 1) }),
			export.ErrMalformed, 8, []string{"line 8 is not a valid trailer", "duplicate"}},
		{"a duplicate record member", edit(data, 2, func(s string) string { return strings.Replace(s, `{"kind"`, `{"auditID":"x","kind"`, 1) }),
			export.ErrMalformed, 2, []string{"line 2 is not JSON", "duplicate"}},
		{"another format version", edit(data, 8, func(s string) string { return strings.Replace(s, `/v1"`, `/v3"`, 1) }),
			export.ErrMalformed, 8, []string{`format "kubernaut-audit-export/v3" is not "kubernaut-audit-export/v1" or "kubernaut-audit-export/v2"`}},
		{"proof lines in a v1 export", edit(data, 8, func(s string) string { return strings.Replace(s, `"records":7,`, `"records":7,"proofs":1,`, 1) }),
			export.ErrMalformed, 8, []string{`has no proof lines, the trailer counts 1`}},
		{"a line after the trailer", append(bytes.Clone(data), lines(data)[0]...),
			export.ErrAltered, 9, []string{"line 9 follows the trailer (line 8): lines were appended after the end"}},
		{"two exports concatenated", append(bytes.Clone(data), data...),
			export.ErrAltered, 9, []string{"line 9 follows the trailer (line 8)"}},
		{"line endings converted", bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")),
			export.ErrAltered, 1, []string{"line 1 ends with CR LF: the file's line endings were converted"}},
		{"an empty line", edit(data, 4, func(s string) string { return s + "\n" }),
			export.ErrMalformed, 5, []string{"line 5 is empty"}},
		{"a line too long", append(bytes.Repeat([]byte("x"), export.MaxLineBytes+1), '\n'),
			export.ErrMalformed, 1, []string{"line 1 is longer than 8388608 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) { verifyFails(t, tc.data, pub, tc.kind, tc.line, tc.texts...) })
	}
}

func TestVerify_AcceptsATrailerWithoutItsFinalNewline(t *testing.T) {
	data, key := sample(t)
	_, err := export.Verify(bytes.NewReader(data[:len(data)-1]), pubOf(key))
	require.NoError(t, err)
}

func TestVerify_NamesBothKeysWhenSignedByAnother(t *testing.T) {
	data, key := sample(t)
	other := newKey(t)
	verr := verifyFails(t, data, pubOf(other), export.ErrWrongKey, 8)
	assert.Equal(t, fmt.Sprintf("the trailer (line 8) names signing key %s; the public key given is %s",
		export.KeyID(pubOf(key)), export.KeyID(pubOf(other))), verr.Error())
}

// A forger who re-signs with a key of his own but keeps the right key ID
// (or rewrites the records and the digest) is told by the signature.
func TestVerify_ASignatureByAnotherKeyUnderTheRightKeyIDIsAnAlteredTrailer(t *testing.T) {
	key, forger := newKey(t), newKey(t)
	rightID := export.KeyID(pubOf(key))
	data := handMade(t, recordLines(t, entries(2, 0)), func(n int, digest, _ string) string {
		return simpleTrailer(`["remediation"]`, "")(n, digest, rightID)
	}, forger)
	verifyFails(t, data, pubOf(key), export.ErrAltered, 3, "the trailer (line 3) was altered: its signature does not verify with key "+rightID)
}

// A file signed as it is but whose records break the format or lie outside
// the trailer's claims is the signer's fault: ErrInconsistent.
func TestVerify_SignedRecordsThatContradictTheTrailerAreInconsistent(t *testing.T) {
	key := newKey(t)
	es := entries(3, 0)
	for _, tc := range []struct {
		name    string
		records []string
		kinds   string
		since   string
		line    int64
		text    string
	}{
		{"out of order", recordLines(t, []wire.AuditEntry{es[0], es[2], es[1]}), `["remediation"]`, "", 3,
			"signed as it is, but line 3: occurredAt 2026-11-03T09:00:01Z is before line 2's"},
		{"a kind the trailer does not name", recordLines(t, es), `["workflow"]`, "", 1,
			"line 1: a remediation record, but the trailer's kinds are [workflow]"},
		{"before since", recordLines(t, es), `["remediation"]`, `"since":"2026-11-03T09:00:01Z",`, 1,
			"line 1: occurredAt 2026-11-03T09:00:00Z is before the trailer's since 2026-11-03T09:00:01Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := handMade(t, tc.records, simpleTrailer(tc.kinds, tc.since), key)
			verifyFails(t, data, pubOf(key), export.ErrInconsistent, tc.line, tc.text)
		})
	}
}

func gz(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func TestVerify_ReadsGzip(t *testing.T) {
	data, key := sample(t)
	tr, err := export.Verify(bytes.NewReader(gz(t, data)), pubOf(key))
	require.NoError(t, err)
	assert.Equal(t, int64(7), tr.Records)

	t.Run("cut short", func(t *testing.T) {
		z := gz(t, data)
		verifyFails(t, z[:len(z)-30], pubOf(key), export.ErrTruncated, 7, "the gzip data is cut short after line 7")
	})
	t.Run("an altered line inside", func(t *testing.T) {
		verifyFails(t, gz(t, without(data, 2)), pubOf(key), export.ErrAltered, 0, "the file has 6")
	})
	t.Run("a damaged checksum", func(t *testing.T) {
		z := gz(t, data)
		z[len(z)-6] ^= 1 // the CRC-32 of the gzip trailer
		verifyFails(t, z, pubOf(key), export.ErrAltered, 8, "the gzip data is damaged after line 8")
	})
}

// A record line over the read buffer (64 KiB) is assembled and verified
// like any other.
func TestVerify_LongRecordLines(t *testing.T) {
	key := newKey(t)
	es := entries(3, 0)
	es[1].Remediation.Reasoning = strings.Repeat("\u0001", wire.MaxTextLen) // escaped: 6 bytes each
	data := write(t, es, trailer(), key)
	require.Greater(t, len(lines(data)[1]), 128<<10)
	_, err := export.Verify(bytes.NewReader(data), pubOf(key))
	require.NoError(t, err)
	verifyFails(t, edit(data, 2, func(s string) string { return strings.Replace(s, `"kind"`, `"kind`, 1) }), pubOf(key), export.ErrMalformed, 2, "line 2 is not JSON")
}

func TestVerify_RefusesAPublicKeyOfTheWrongSize(t *testing.T) {
	data, _ := sample(t)
	_, err := export.Verify(bytes.NewReader(data), make([]byte, 31))
	require.ErrorContains(t, err, "not an Ed25519 public key")
}

func TestVerify_GzipHeaderCutShort(t *testing.T) {
	data, key := sample(t)
	verifyFails(t, gz(t, data)[:5], pubOf(key), export.ErrTruncated, 0, "the gzip data is cut short after line 0")
	verifyFails(t, []byte{0x1f, 0x8b}, pubOf(key), export.ErrTruncated, 0, "the gzip data is cut short after line 0")
}

// scribbler is a reader that, as io.Reader allows, uses all of p as
// scratch space even when it returns nothing more.
type scribbler struct{ r *bytes.Reader }

func (s scribbler) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	for i := n; i < len(p); i++ {
		p[i] = 'x'
	}
	return n, err
}

// The trailer's signed bytes are kept before Verify reads on to make sure
// nothing follows them.
func TestVerify_KeepsTheTrailerWhileReadingToTheEnd(t *testing.T) {
	data, key := sample(t)
	_, err := export.Verify(scribbler{bytes.NewReader(data)}, pubOf(key))
	require.NoError(t, err)
}
