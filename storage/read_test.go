package storage_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// The four writers of the spec.
const (
	gatewaySA  = testSA
	analysisSA = "kubernaut-system/aianalysis-controller-sa"
	executorSA = "kubernaut-system/kubernetes-executor-sa"
	workflowSA = "kubernaut-system/workflowexecution-controller-sa"
)

// readBase is the start of the event times of the read tests; whole
// seconds, so that many rows tie on their event time.
var readBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// stored is a record as written, with its writer.
type stored struct {
	sa  string
	rec wire.Record
}

func (s stored) key() string { return s.sa + " " + s.rec.ID }

// at is the record's event time as storage orders it.
func (s stored) at() time.Time { return storage.OccurredAt(&s.rec) }

// field is the value of a filter's field in s ("" when not sent).
func (s stored) field(name string) string {
	if name == "serviceAccount" {
		return s.sa
	}
	if a := s.rec.Remediation; a != nil {
		return map[string]string{"remediationRequestID": a.RemediationRequestID, "alertName": a.AlertName,
			"cluster": a.Cluster, "namespace": a.Namespace, "actionType": a.ActionType, "status": a.Status}[name]
	}
	w := s.rec.Workflow
	return map[string]string{"workflowID": w.WorkflowID, "stepName": w.StepName, "stepStatus": w.StepStatus}[name]
}

// compareStored is the order of the reads: event time, writer, ID, bytewise.
func compareStored(a, b stored) int {
	return cmp.Or(a.at().Compare(b.at()), cmp.Compare(a.sa, b.sa), cmp.Compare(a.rec.ID, b.rec.ID))
}

func entryKey(e *wire.AuditEntry) string { return e.ServiceAccount + " " + e.AuditID }

func entryKeys(es []wire.AuditEntry) []string {
	keys := make([]string, len(es))
	for i := range es {
		keys[i] = entryKey(&es[i])
	}
	return keys
}

// expect is the keys of the records of kind matching filters and the time
// range, in the order of the reads.
func expect(all []stored, kind wire.Kind, filters map[string]string, since, until time.Time, asc bool) []string {
	var match []stored
	for _, s := range all {
		ok := s.rec.Kind == kind && (since.IsZero() || !s.at().Before(since)) && (until.IsZero() || s.at().Before(until))
		for name, v := range filters {
			ok = ok && s.field(name) == v
		}
		if ok {
			match = append(match, s)
		}
	}
	slices.SortFunc(match, compareStored)
	if !asc {
		slices.Reverse(match)
	}
	keys := make([]string, len(match))
	for i, s := range match {
		keys[i] = s.key()
	}
	return keys
}

// readData makes n records of both kinds from the four writers, with a
// few values per field (some rare), event times over a few minutes in whole
// seconds (many ties), and some IDs written by two writers.
func readData(rng *rand.Rand, n int) []stored {
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	at := func() *time.Time { return ptr(readBase.Add(time.Duration(rng.IntN(240)) * time.Second)) }
	out := make([]stored, 0, n)
	for len(out) < n {
		rr := fmt.Sprintf("rr-%03d", rng.IntN(n/4+1))
		rec := wire.Record{ID: newID(), ReceivedAt: readBase.Add(time.Hour)}
		var sa string
		switch rng.IntN(4) {
		case 0:
			sa = gatewaySA
			rec.Kind, rec.Remediation = wire.KindRemediation, &wire.RemediationAudit{RemediationRequestID: rr,
				AlertName: pick("HighMemoryUsage", "HighMemoryUsage", "KubePodCrashLooping", "TargetDown"),
				Namespace: pick("payments", "payments", "search", "batch"), Cluster: pick("us-west-2", "us-west-2", "eu-central-1"),
				Priority: "P1", CreatedAt: at()}
		case 1:
			sa = analysisSA
			rec.Kind, rec.Remediation = wire.KindRemediation, &wire.RemediationAudit{RemediationRequestID: rr,
				AlertName: pick("HighMemoryUsage", "KubePodCrashLooping"), Namespace: pick("payments", "search"),
				Cluster: pick("us-west-2", "eu-central-1"), ActionType: pick("scale", "scale", "restart", "cordon-node"),
				Confidence: ptr(0.5), Reasoning: "because", CreatedAt: at()}
		case 2:
			sa = executorSA
			rec.Kind, rec.Remediation = wire.KindRemediation, &wire.RemediationAudit{RemediationRequestID: rr,
				ActionType: pick("scale", "restart"), Status: pick("completed", "completed", "completed", "failed"),
				TargetResource: "payments/deployment/api", DurationNanos: ptr(int64(time.Second))}
			if rng.IntN(2) == 0 { // else the event time is receivedAt
				rec.Remediation.CreatedAt = at()
			}
		case 3:
			sa = workflowSA
			rec.Kind, rec.Workflow = wire.KindWorkflow, &wire.WorkflowAudit{WorkflowID: "wf-" + rr,
				StepName: pick("validate", "apply", "verify"), StepStatus: pick("completed", "completed", "failed", "skipped"),
				ExecutedAt: at()}
		}
		out = append(out, stored{sa, rec})
		if rng.IntN(10) == 0 { // another writer stores the same ID at the same time
			other := stored{pick(gatewaySA, analysisSA, executorSA, workflowSA), rec}
			if other.sa != sa {
				out = append(out, other)
			}
		}
	}
	return out
}

// writeStored writes each record as its writer.
func writeStored(t testing.TB, db *storage.DB, recs []stored) {
	t.Helper()
	bySA := map[string][]wire.Record{}
	for _, s := range recs {
		bySA[s.sa] = append(bySA[s.sa], s.rec)
	}
	for sa, batch := range bySA {
		st, err := db.WriteBatch(testContext(t), sa, batch)
		require.NoError(t, err)
		for _, s := range st {
			require.Equal(t, wire.StatusPersisted, s)
		}
	}
}

// TestRead runs the read behaviours on one database holding one data set
// of both kinds.
func TestRead(t *testing.T) {
	t.Parallel()
	_, db := migratedDB(t)
	data := readData(rand.New(rand.NewPCG(13, 1)), 600)
	writeStored(t, db, data)
	for name, f := range map[string]func(*testing.T, *storage.DB, []stored){
		"QueryAudits: each filter alone, both orders":        eachFilterAlone,
		"QueryAudits: every combination of filters":          everyCombinationOfFilters,
		"QueryAudits: since is inclusive, until exclusive":   sinceInclusiveUntilExclusive,
		"QueryAudits: pages in both orders cover the result": pagesCoverTheResult,
		"QueryAudits: an entry has every stored field":       entryHasEveryStoredField,
		"Timeline: one remediation, oldest first":            timelineOldestFirst,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, db, data)
		})
	}
}

func query(t *testing.T, db *storage.DB, q storage.AuditQuery) []string {
	t.Helper()
	got, err := db.QueryAudits(testContext(t), q)
	require.NoError(t, err)
	return entryKeys(got)
}

func eachFilterAlone(t *testing.T, db *storage.DB, data []stored) {
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		for _, name := range storage.FilterFields(kind) {
			values := map[string]bool{"no-such-value": true}
			for _, s := range data {
				if v := s.field(name); s.rec.Kind == kind && v != "" {
					values[v] = true
				}
			}
			for v := range values {
				for _, asc := range []bool{false, true} {
					f := map[string]string{name: v}
					want := expect(data, kind, f, time.Time{}, time.Time{}, asc)
					got := query(t, db, storage.AuditQuery{Kind: kind, Filters: f, Ascending: asc, Limit: 1000})
					require.Equal(t, want, got, "%s %s=%s asc=%v", kind, name, v, asc)
				}
			}
		}
	}
}

func everyCombinationOfFilters(t *testing.T, db *storage.DB, data []stored) {
	rng := rand.New(rand.NewPCG(13, 2))
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		names := storage.FilterFields(kind)
		var ofKind []stored
		for _, s := range data {
			if s.rec.Kind == kind {
				ofKind = append(ofKind, s)
			}
		}
		for set := 0; set < 1<<len(names); set++ {
			// The values of one row of the kind, so that most combinations
			// match something; a field that row did not send takes another
			// row's value.
			row := ofKind[rng.IntN(len(ofKind))]
			f := map[string]string{}
			for i, name := range names {
				if set&(1<<i) == 0 {
					continue
				}
				v := row.field(name)
				for v == "" {
					v = ofKind[rng.IntN(len(ofKind))].field(name)
				}
				f[name] = v
			}
			asc := set%2 == 1
			want := expect(data, kind, f, time.Time{}, time.Time{}, asc)
			got := query(t, db, storage.AuditQuery{Kind: kind, Filters: f, Ascending: asc, Limit: 1000})
			require.Equal(t, want, got, "%s %v asc=%v", kind, f, asc)
		}
	}
}

func sinceInclusiveUntilExclusive(t *testing.T, db *storage.DB, data []stored) {
	since, until := readBase.Add(60*time.Second), readBase.Add(120*time.Second)
	var atSince, atUntil int
	for _, s := range data {
		atSince += boolInt(s.at().Equal(since))
		atUntil += boolInt(s.at().Equal(until))
	}
	require.Positive(t, atSince, "the data has rows exactly at since")
	require.Positive(t, atUntil, "the data has rows exactly at until")
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		for _, r := range []struct{ since, until time.Time }{{since, until}, {since, time.Time{}}, {time.Time{}, until}} {
			for _, asc := range []bool{false, true} {
				want := expect(data, kind, nil, r.since, r.until, asc)
				got := query(t, db, storage.AuditQuery{Kind: kind, Since: r.since, Until: r.until, Ascending: asc, Limit: 1000})
				require.Equal(t, want, got, "%s since %v until %v asc=%v", kind, r.since, r.until, asc)
			}
		}
		// With a filter too: the index's range.
		f := map[string]string{"serviceAccount": map[wire.Kind]string{wire.KindRemediation: gatewaySA, wire.KindWorkflow: workflowSA}[kind]}
		want := expect(data, kind, f, since, until, false)
		require.NotEmpty(t, want)
		got := query(t, db, storage.AuditQuery{Kind: kind, Filters: f, Since: since, Until: until, Limit: 1000})
		require.Equal(t, want, got)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pageAll pages through q with q.Limit per page and returns every key.
func pageAll(t *testing.T, db *storage.DB, q storage.AuditQuery, between func()) []string {
	t.Helper()
	var keys []string
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10000, "paging does not end")
		page, err := db.QueryAudits(testContext(t), q)
		require.NoError(t, err)
		keys = append(keys, entryKeys(page)...)
		if len(page) < q.Limit {
			return keys
		}
		q.After = ptr(storage.PositionOf(&page[len(page)-1]))
		if between != nil {
			between()
		}
	}
}

func pagesCoverTheResult(t *testing.T, db *storage.DB, data []stored) {
	for _, kind := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		for _, asc := range []bool{false, true} {
			for _, limit := range []int{1, 7, 100} {
				want := expect(data, kind, nil, time.Time{}, time.Time{}, asc)
				got := pageAll(t, db, storage.AuditQuery{Kind: kind, Ascending: asc, Limit: limit}, nil)
				require.Equal(t, want, got, "%s asc=%v limit=%d", kind, asc, limit)
			}
			f := map[string]string{"serviceAccount": gatewaySA}
			since := readBase.Add(30 * time.Second)
			want := expect(data, kind, f, since, time.Time{}, asc)
			got := pageAll(t, db, storage.AuditQuery{Kind: kind, Filters: f, Since: since, Ascending: asc, Limit: 5}, nil)
			require.Equal(t, want, got, "%s filtered asc=%v", kind, asc)
		}
	}
}

func entryHasEveryStoredField(t *testing.T, db *storage.DB, data []stored) {
	for _, s := range data {
		var f map[string]string
		if s.rec.Kind == wire.KindRemediation {
			f = map[string]string{"remediationRequestID": s.rec.Remediation.RemediationRequestID, "serviceAccount": s.sa}
		} else {
			f = map[string]string{"workflowID": s.rec.Workflow.WorkflowID, "serviceAccount": s.sa}
		}
		got, err := db.QueryAudits(testContext(t), storage.AuditQuery{Kind: s.rec.Kind, Filters: f, Limit: 1000})
		require.NoError(t, err)
		i := slices.IndexFunc(got, func(e wire.AuditEntry) bool { return e.AuditID == s.rec.ID })
		require.GreaterOrEqual(t, i, 0)
		requireEntry(t, s, &got[i])
	}
}

// requireEntry checks that e is s as storage maps it back: its identity,
// its times, and the body Records returns (the same mapping).
func requireEntry(t *testing.T, s stored, e *wire.AuditEntry) {
	t.Helper()
	want := s.rec
	if a := want.Remediation; a != nil {
		a2 := *a
		a2.CreatedAt = ptr(s.at())
		want.Remediation = &a2
	}
	if w := want.Workflow; w != nil {
		w2 := *w
		w2.ExecutedAt = ptr(s.at())
		want.Workflow = &w2
	}
	assert.Equal(t, s.rec.Kind, e.Kind)
	assert.Equal(t, s.rec.ID, e.AuditID)
	assert.Equal(t, s.sa, e.ServiceAccount)
	assert.True(t, s.at().Equal(e.OccurredAt), "occurredAt %v, want %v", e.OccurredAt, s.at())
	assert.True(t, s.rec.ReceivedAt.Equal(e.ReceivedAt), "receivedAt %v, want %v", e.ReceivedAt, s.rec.ReceivedAt)
	got := wire.Record{ID: e.AuditID, Kind: e.Kind, ReceivedAt: e.ReceivedAt, Remediation: e.Remediation, Workflow: e.Workflow}
	assert.Equal(t, normalize(want), normalize(got))
}

// normalize puts every time of r in UTC, so that equal instants compare
// equal.
func normalize(r wire.Record) wire.Record {
	utc := func(p *time.Time) *time.Time {
		if p == nil {
			return nil
		}
		return ptr(p.UTC())
	}
	r.ReceivedAt = r.ReceivedAt.UTC()
	if a := r.Remediation; a != nil {
		a2 := *a
		a2.CreatedAt, a2.ExecutedAt = utc(a.CreatedAt), utc(a.ExecutedAt)
		r.Remediation = &a2
	}
	if w := r.Workflow; w != nil {
		w2 := *w
		w2.ExecutedAt = utc(w.ExecutedAt)
		r.Workflow = &w2
	}
	return r
}

func timelineOldestFirst(t *testing.T, db *storage.DB, data []stored) {
	ctx := testContext(t)
	// The remediation with the most audits, and writers among them.
	count := map[string]int{}
	for _, s := range data {
		if s.rec.Remediation != nil {
			count[s.rec.Remediation.RemediationRequestID]++
		}
	}
	var rrs []string
	for rr := range count {
		rrs = append(rrs, rr)
	}
	slices.Sort(rrs)
	for _, rr := range rrs {
		f := map[string]string{"remediationRequestID": rr}
		want := expect(data, wire.KindRemediation, f, time.Time{}, time.Time{}, true)
		got, err := db.Timeline(ctx, rr, 1000)
		require.NoError(t, err)
		require.Equal(t, want, entryKeys(got), rr)
		if len(want) > 1 {
			got, err = db.Timeline(ctx, rr, len(want)-1)
			require.NoError(t, err)
			require.Equal(t, want[:len(want)-1], entryKeys(got), "%s: the first limit events", rr)
		}
	}
	got, err := db.Timeline(ctx, "rr-none", 1000)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestTimeline_EveryWriterOfOneRemediation(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, db := migratedDB(t)
	at := func(s int) *time.Time { return ptr(readBase.Add(time.Duration(s) * time.Second)) }
	rem := func(sa, id, rr string, created *time.Time) stored {
		return stored{sa, wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: readBase.Add(time.Minute),
			Remediation: &wire.RemediationAudit{RemediationRequestID: rr, CreatedAt: created}}}
	}
	data := []stored{
		rem(executorSA, "audit-c", "rr-1", at(3)),
		rem(gatewaySA, "audit-a", "rr-1", at(1)),
		rem(analysisSA, "audit-b", "rr-1", at(2)),
		rem(analysisSA, "audit-tie", "rr-1", at(2)), // same time: writer, then ID
		rem(gatewaySA, "audit-tie", "rr-1", at(2)),  // another writer's record with the same ID
		rem(executorSA, "audit-late", "rr-1", nil),  // no createdAt: its receivedAt
		rem(gatewaySA, "audit-other", "rr-2", at(0)),
	}
	writeStored(t, db, data)
	got, err := db.Timeline(ctx, "rr-1", 1000)
	require.NoError(t, err)
	assert.Equal(t, []string{
		gatewaySA + " audit-a",
		analysisSA + " audit-b",
		analysisSA + " audit-tie",
		gatewaySA + " audit-tie",
		executorSA + " audit-c",
		executorSA + " audit-late",
	}, entryKeys(got))

	_, err = db.Timeline(ctx, "rr-1", 0)
	assert.ErrorIs(t, err, storage.ErrInvalidQuery)
	got, err = db.Timeline(ctx, "rr-\x00", 10)
	require.NoError(t, err, "a value no row can hold matches nothing")
	assert.Empty(t, got)
}

func TestAuditsByID_EveryWriterOfTheID(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, db := migratedDB(t)
	id := newID()
	rem := func(sa, rr string) stored {
		return stored{sa, wire.Record{ID: id, Kind: wire.KindRemediation, ReceivedAt: readBase,
			Remediation: &wire.RemediationAudit{RemediationRequestID: rr, Status: "completed"}}}
	}
	data := []stored{rem(executorSA, "rr-exec"), rem(gatewaySA, "rr-gw"),
		{workflowSA, wire.Record{ID: id, Kind: wire.KindWorkflow, ReceivedAt: readBase,
			Workflow: &wire.WorkflowAudit{WorkflowID: "wf", StepName: "s", StepStatus: "completed"}}}}
	writeStored(t, db, data)

	got, err := db.AuditsByID(ctx, wire.KindRemediation, id)
	require.NoError(t, err)
	require.Equal(t, []string{gatewaySA + " " + id, executorSA + " " + id}, entryKeys(got), "ordered by writer")
	requireEntry(t, data[1], &got[0])
	requireEntry(t, data[0], &got[1])

	got, err = db.AuditsByID(ctx, wire.KindWorkflow, id)
	require.NoError(t, err)
	require.Equal(t, []string{workflowSA + " " + id}, entryKeys(got), "only the kind asked for")
	requireEntry(t, data[2], &got[0])

	for _, none := range []string{newID(), "", "bad\xff"} {
		got, err = db.AuditsByID(ctx, wire.KindRemediation, none)
		require.NoError(t, err)
		assert.Empty(t, got, "%q", none)
	}
	_, err = db.AuditsByID(ctx, "alert", id)
	var qe *storage.QueryError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, "kind", qe.Field)
}

func TestQueryAudits_RefusesBadQueries(t *testing.T) {
	t.Parallel()
	_, db := migratedDB(t)
	ok := storage.AuditQuery{Kind: wire.KindRemediation, Limit: 100}
	at := readBase
	for _, c := range []struct {
		name  string
		edit  func(*storage.AuditQuery)
		field string
	}{
		{"no kind", func(q *storage.AuditQuery) { q.Kind = "" }, "kind"},
		{"unknown kind", func(q *storage.AuditQuery) { q.Kind = "alert" }, "kind"},
		{"unknown filter", func(q *storage.AuditQuery) { q.Filters = map[string]string{"alert_name": "x"} }, "alert_name"},
		{"another kind's filter", func(q *storage.AuditQuery) { q.Filters = map[string]string{"workflowID": "x"} }, "workflowID"},
		{"empty value", func(q *storage.AuditQuery) { q.Filters = map[string]string{"status": ""} }, "status"},
		{"NUL in a value", func(q *storage.AuditQuery) { q.Filters = map[string]string{"cluster": "a\x00b"} }, "cluster"},
		{"invalid UTF-8", func(q *storage.AuditQuery) { q.Filters = map[string]string{"namespace": "\xc3("} }, "namespace"},
		{"limit 0", func(q *storage.AuditQuery) { q.Limit = 0 }, "limit"},
		{"limit beyond MaxQueryLimit", func(q *storage.AuditQuery) { q.Limit = storage.MaxQueryLimit + 1 }, "limit"},
		{"since after until", func(q *storage.AuditQuery) { q.Since, q.Until = at.Add(time.Second), at }, "since"},
		{"since equal to until", func(q *storage.AuditQuery) { q.Since, q.Until = at, at }, "since"},
		{"after without a time", func(q *storage.AuditQuery) { q.After = &storage.Position{ServiceAccount: "a/b", ID: "x"} }, "after"},
		{"after without an ID", func(q *storage.AuditQuery) { q.After = &storage.Position{OccurredAt: at, ServiceAccount: "a/b"} }, "after"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := ok
			c.edit(&q)
			got, err := db.QueryAudits(testContext(t), q)
			assert.Nil(t, got)
			var qe *storage.QueryError
			require.ErrorAs(t, err, &qe)
			assert.ErrorIs(t, err, storage.ErrInvalidQuery)
			assert.Equal(t, c.field, qe.Field)
			assert.NotEmpty(t, qe.Reason)
		})
	}
	got, err := db.QueryAudits(testContext(t), ok)
	require.NoError(t, err, "the unedited query is valid")
	assert.Empty(t, got)
}

func TestFilterFields(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"remediationRequestID", "alertName", "cluster", "namespace", "actionType", "status",
		"serviceAccount"}, storage.FilterFields(wire.KindRemediation))
	assert.Equal(t, []string{"workflowID", "stepName", "stepStatus", "serviceAccount"}, storage.FilterFields(wire.KindWorkflow))
	assert.Nil(t, storage.FilterFields("alert"))
}

// TestQueryAudits_PagingWhileWritersInsert pages through a query while
// another goroutine keeps inserting rows, between every two pages, among
// them rows whose event time falls in the range already paged and rows that
// tie on event time with existing ones (same time, same ID, another
// writer). Every row that existed before paging began is returned, and no
// row twice.
func TestQueryAudits_PagingWhileWritersInsert(t *testing.T) {
	t.Parallel()
	_, db := migratedDB(t)
	rng := rand.New(rand.NewPCG(13, 3))
	before := readData(rng, 800)
	writeStored(t, db, before)

	for _, c := range []struct {
		name    string
		kind    wire.Kind
		filters map[string]string
		asc     bool
	}{
		{"remediation newest first", wire.KindRemediation, nil, false},
		{"remediation oldest first", wire.KindRemediation, nil, true},
		{"remediation by cluster", wire.KindRemediation, map[string]string{"cluster": "us-west-2"}, false},
		{"workflow oldest first", wire.KindWorkflow, nil, true},
		{"workflow by step status", wire.KindWorkflow, map[string]string{"stepStatus": "completed"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			next := make(chan struct{}) // one more batch, please
			done := make(chan struct{}) // the batch is in
			var (
				wg       sync.WaitGroup
				inserted atomic.Int64
			)
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(13, uint64(len(c.name))))
				for {
					select {
					case <-ctx.Done():
						return
					case <-next:
					}
					// Fresh rows anywhere in the range (on either side of
					// the page boundary), and a copy of an existing row
					// under another writer: same ID, same event time.
					// Fewer than a page, so that paging ends.
					batch := readData(rng, 4)
					s := before[rng.IntN(len(before))]
					s.sa = "kubernaut-system/late-writer-" + fmt.Sprint(rng.IntN(3))
					batch = append(batch, s)
					for _, s := range batch {
						if _, err := db.WriteBatch(ctx, s.sa, []wire.Record{s.rec}); err != nil {
							if ctx.Err() == nil {
								t.Errorf("concurrent insert: %v", err)
							}
							return
						}
						inserted.Add(1)
					}
					done <- struct{}{}
				}
			})
			between := func() {
				next <- struct{}{}
				<-done
			}
			got := pageAll(t, db, storage.AuditQuery{Kind: c.kind, Filters: c.filters, Ascending: c.asc, Limit: 9}, between)
			cancel()
			wg.Wait()
			require.Positive(t, inserted.Load())

			seen := map[string]bool{}
			for _, k := range got {
				require.False(t, seen[k], "row %s returned twice", k)
				seen[k] = true
			}
			want := expect(before, c.kind, c.filters, time.Time{}, time.Time{}, c.asc)
			for _, k := range want {
				require.True(t, seen[k], "row %s, stored before paging began, was skipped", k)
			}
			t.Logf("%d rows paged, %d existed before, %d inserted meanwhile", len(got), len(want), inserted.Load())
		})
	}
}

// TestQueryAudits_ServerStopsAtTheDeadline makes a page wait on a lock held
// by another transaction: with a deadline on ctx, the call fails at the
// deadline and PostgreSQL stops the statement then (pgx sends a cancel
// request as it drops the connection), rather than waiting for the lock and
// then running the statement for nobody.
func TestQueryAudits_ServerStopsAtTheDeadline(t *testing.T) {
	t.Parallel()
	dsn, db := migratedDB(t)
	ctx := testContext(t)
	locker := connect(t, dsn)
	_, err := locker.Exec(ctx, "BEGIN; LOCK TABLE remediation_audit IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = db.QueryAudits(qctx, storage.AuditQuery{Kind: wire.KindRemediation, Limit: 10,
		Filters: map[string]string{"status": "failed"}})
	require.Error(t, err)
	assert.ErrorIs(t, err, storage.ErrUnavailable)
	assert.Less(t, time.Since(start), 5*time.Second)

	var waiting int
	require.Eventually(t, func() bool {
		require.NoError(t, connect(t, dsn).QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'SELECT service_account%remediation_audit%'
			AND state = 'active'`).Scan(&waiting))
		return waiting == 0
	}, 2*time.Second, 50*time.Millisecond, "the page's statement still runs on the server")
	_, err = locker.Exec(ctx, "ROLLBACK")
	require.NoError(t, err)

	got, err := db.QueryAudits(qctx, storage.AuditQuery{Kind: wire.KindRemediation, Limit: 10})
	require.Error(t, err, "the deadline has passed")
	assert.Nil(t, got)
	got, err = db.QueryAudits(testContext(t), storage.AuditQuery{Kind: wire.KindRemediation, Limit: 10})
	require.NoError(t, err, "the pool still serves")
	assert.Empty(t, got)
}
