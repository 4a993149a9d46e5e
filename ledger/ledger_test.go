package ledger_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/ledger"
)

func entry() *ledger.Entry {
	at := time.Date(2026, 12, 2, 10, 0, 0, 123456000, time.UTC)
	e := &ledger.Entry{Batch: 7, Writer: "ns/gateway-sa", WrittenAt: at,
		Remediation: []ledger.Row{{ID: "audit-b", EventTime: at, Leaf: ledger.Leaf{2}}, {ID: "audit-a", EventTime: at.Add(-time.Hour), Leaf: ledger.Leaf{1}}},
		Workflow:    []ledger.Row{{ID: "audit-c", EventTime: at, Leaf: ledger.Leaf{3}}}}
	e.SortRows()
	e.Digest = e.ComputeDigest()
	return e
}

func TestEntry_RowsRoundTripAndTheDigestCoversEveryField(t *testing.T) {
	e := entry()
	assert.Equal(t, "audit-a", e.Remediation[0].ID, "sorted by ID")
	var back ledger.Entry
	require.NoError(t, back.DecodeRows(e.EncodeRows()))
	assert.Equal(t, e.Remediation, back.Remediation)
	assert.Equal(t, e.Workflow, back.Workflow)

	for name, change := range map[string]func(*ledger.Entry){
		"writer":     func(e *ledger.Entry) { e.Writer = "ns/other" },
		"time":       func(e *ledger.Entry) { e.WrittenAt = e.WrittenAt.Add(time.Microsecond) },
		"an ID":      func(e *ledger.Entry) { e.Remediation[0].ID = "audit-z" },
		"a leaf":     func(e *ledger.Entry) { e.Workflow[0].Leaf[31] ^= 1 },
		"event time": func(e *ledger.Entry) { e.Remediation[1].EventTime = e.Remediation[1].EventTime.Add(time.Second) },
		"a row gone": func(e *ledger.Entry) { e.Remediation = e.Remediation[:1] },
		"kind moved": func(e *ledger.Entry) {
			e.Workflow = append(e.Workflow, e.Remediation[1])
			e.Remediation = e.Remediation[:1]
		},
		"an anchor": func(e *ledger.Entry) { e.Prune = &ledger.Prune{Kind: "remediation", To: e.WrittenAt} },
	} {
		changed := entry()
		change(changed)
		assert.NotEqual(t, e.Digest, changed.ComputeDigest(), name)
	}
	assert.Equal(t, e.Digest, entry().ComputeDigest(), "deterministic")
	changed := entry()
	changed.Batch = 8
	assert.Equal(t, e.Digest, changed.ComputeDigest(), "the batch only links rows to their entry")
}

func TestEntry_DecodeRefusesMalformedRows(t *testing.T) {
	good := entry().EncodeRows()
	for name, b := range map[string][]byte{
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 0),
		"huge count":    append([]byte{0xff, 0xff, 0xff, 0xff}, good[4:]...),
		"count only":    good[:3],
		"id past bytes": append(append([]byte(nil), good[:4]...), 0xff, 0xff, 0xff, 0xff),
	} {
		var e ledger.Entry
		assert.Error(t, e.DecodeRows(b), name)
	}
}

func TestLeaf_NullEmptyAndValuesDiffer(t *testing.T) {
	var enc ledger.RowEncoder
	leaf := func(build func()) ledger.Leaf {
		enc.Reset(ledger.KindRemediation)
		build()
		return enc.Sum()
	}
	null := leaf(func() { enc.OptionalText("") })
	empty := leaf(func() { enc.Text("") })
	assert.NotEqual(t, null, empty, "NULL is not ''")
	assert.Equal(t, null, leaf(func() { enc.Raw(nil) }))
	assert.Equal(t, empty, leaf(func() { enc.Raw([]byte{}) }))
	// Two columns "ab","" differ from "a","b": lengths are part of the bytes.
	assert.NotEqual(t, leaf(func() { enc.Text("ab"); enc.Text("") }), leaf(func() { enc.Text("a"); enc.Text("b") }))
	enc.Reset(ledger.KindWorkflow)
	enc.Text("x")
	w := enc.Sum()
	enc.Reset(ledger.KindRemediation)
	enc.Text("x")
	assert.NotEqual(t, w, enc.Sum(), "the kind is part of the leaf")
	at := time.Date(2000, 1, 1, 0, 0, 1, 999, time.UTC)
	assert.EqualValues(t, 1_000_000, ledger.Micros(at), "microseconds since 2000, nanoseconds truncated")
	assert.Equal(t, at.Truncate(time.Microsecond), ledger.FromMicros(ledger.Micros(at)))
}

func TestCheckpoint_SignedLinesReadBackAndForgeriesDoNot(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	otherPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	c := ledger.Sign(key, 42, ledger.Hash{9, 9}, time.Date(2026, 12, 2, 1, 2, 3, 456789000, time.UTC))
	require.NoError(t, c.Verify(pub))
	assert.Error(t, c.Verify(otherPub), "another key")

	var file bytes.Buffer
	file.Write(c.MarshalLine())
	file.WriteString("\n")
	next := ledger.Sign(key, 43, ledger.Hash{1}, time.Now())
	file.Write(next.MarshalLine())
	cps, err := ledger.ReadCheckpoints(&file, pub)
	require.NoError(t, err)
	require.Len(t, cps, 2)
	assert.Equal(t, c.Seq, cps[0].Seq)
	assert.Equal(t, c.Hash, cps[0].Hash)
	assert.True(t, c.Time.Equal(cps[0].Time))

	forged := strings.Replace(string(c.MarshalLine()), `"seq":42`, `"seq":41`, 1)
	_, err = ledger.ReadCheckpoints(strings.NewReader(forged), pub)
	assert.ErrorContains(t, err, "bad signature")
	_, err = ledger.ReadCheckpoints(strings.NewReader(`{"seq":1,"extra":true}`), pub)
	assert.ErrorContains(t, err, "line 1")
	_, err = ledger.ReadCheckpoints(strings.NewReader(""), pub)
	assert.ErrorContains(t, err, "none found")
}

func TestVerifier_AChainOfEntriesAndItsRows(t *testing.T) {
	e := entry()
	e.Seq = 1
	e.Hash = ledger.ChainHash(ledger.Genesis, 1, e.Digest)
	genesis := &ledger.Entry{}
	run := func(rows func(v *ledger.Verifier), cps ...ledger.Checkpoint) *ledger.Report {
		v := ledger.NewVerifier(0, ledger.Hash{}, cps, time.Minute, time.Now())
		v.Entry(genesis)
		v.Entry(e)
		rows(v)
		return v.Finish(1, e.Hash)
	}
	all := func(v *ledger.Verifier) {
		for _, r := range e.Remediation {
			v.Row(ledger.KindRemediation, 7, r.ID, e.Writer, r.EventTime, r.Leaf)
		}
		for _, r := range e.Workflow {
			v.Row(ledger.KindWorkflow, 7, r.ID, e.Writer, r.EventTime, r.Leaf)
		}
	}
	r := run(all)
	require.True(t, r.OK(), "%v", r.Failures)
	assert.EqualValues(t, 3, r.Rows)

	r = run(func(v *ledger.Verifier) {
		all(v)
		v.Row(ledger.KindWorkflow, 7, "audit-c", e.Writer, time.Now(), ledger.Leaf{3})
	})
	assert.Equal(t, ledger.ProblemInserted, r.Failures[0].Problem, "a second copy")

	r = run(all, ledger.Checkpoint{Seq: 1, Hash: ledger.HexHash{0xde}})
	assert.Equal(t, ledger.ProblemFork, r.Failures[0].Problem)
}
