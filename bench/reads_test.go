package bench

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/wire"
)

// fakeReadAPI answers the reader like the central would, counting what it
// was asked: a query has three pages (a remediationRequestID one page of
// one record), and every failEvery-th request fails with 503.
type fakeReadAPI struct {
	t         *testing.T
	failEvery int

	mu        sync.Mutex
	requests  int
	failed    int
	rows      int
	byType    map[string]int
	filters   map[string]int
	named     map[string]bool // remediation IDs pages returned
	timelines []string
}

func newFakeReadAPI(t *testing.T, failEvery int) *fakeReadAPI {
	return &fakeReadAPI{t: t, failEvery: failEvery, byType: map[string]int{}, filters: map[string]int{}, named: map[string]bool{}}
}

// request counts one request; it reports whether it fails.
func (f *fakeReadAPI) request(typ string) (n int, fail bool) {
	f.requests++
	f.byType[typ]++
	if f.failEvery > 0 && f.requests%f.failEvery == 0 {
		f.failed++
		return f.requests, true
	}
	return f.requests, false
}

var errUnavailable = &client.APIError{StatusCode: 503, Body: wire.ErrorBody{Error: "unavailable"}}

func (f *fakeReadAPI) AuditPages(_ context.Context, q client.Query) iter.Seq2[*wire.AuditPage, error] {
	return func(yield func(*wire.AuditPage, error) bool) {
		f.mu.Lock()
		assert.Equal(f.t, wire.KindRemediation, q.Kind)
		assert.Equal(f.t, readPageSize, q.PageSize)
		assert.Len(f.t, q.Filters, 1, "one filter per query")
		for k, v := range q.Filters {
			assert.NotEmpty(f.t, v, k)
			f.filters[k]++
		}
		f.mu.Unlock()
		pages, size := 3, readPageSize
		if _, ok := q.Filters["remediationRequestID"]; ok {
			pages, size = 1, 1
		}
		for p := range pages {
			typ := readPage
			if p > 0 {
				typ = readNextPage
			}
			f.mu.Lock()
			n, fail := f.request(typ)
			if fail {
				f.mu.Unlock()
				yield(nil, errUnavailable)
				return
			}
			page := &wire.AuditPage{}
			for i := range size {
				id := fmt.Sprintf("rr-%d-%d", n, i)
				f.named[id] = true
				page.Records = append(page.Records, wire.AuditEntry{Kind: wire.KindRemediation,
					Remediation: &wire.RemediationAudit{RemediationRequestID: id}})
			}
			if p < pages-1 {
				page.NextCursor = fmt.Sprintf("cursor-%d", n)
			}
			f.rows += size
			f.mu.Unlock()
			if !yield(page, nil) {
				return
			}
		}
	}
}

func (f *fakeReadAPI) Timeline(_ context.Context, id string) (*wire.Timeline, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timelines = append(f.timelines, id)
	if _, fail := f.request(readTimeline); fail {
		return nil, errUnavailable
	}
	if !f.named[id] {
		return nil, &client.APIError{StatusCode: 404, Body: wire.ErrorBody{Error: "not_found"}}
	}
	f.rows += 2
	return &wire.Timeline{RemediationRequestID: id, Events: make([]wire.AuditEntry, 2)}, nil
}

// countingPacer lets limit reads through, then stops the reader.
type countingPacer struct {
	mu     sync.Mutex
	passed int
	limit  int
	stop   context.CancelFunc
}

func (p *countingPacer) Wait(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.passed == p.limit {
		p.stop()
		return context.Canceled
	}
	p.passed++
	return nil
}

// recentOfEveryWriter is a Recent with one acknowledged remediation
// record of each remediation writer, as the load makes them.
func recentOfEveryWriter() *loadgen.Recent {
	r := loadgen.NewRecent(8)
	for ctrl := range 8 {
		rec := loadgen.NewGenerator(1, uint64(ctrl), 0.8, 200).Record(ctrl%4, fmt.Sprint("k-", ctrl), time.Now())
		if rec.Remediation != nil {
			r.Put(ctrl, rec.Remediation)
		}
	}
	return r
}

func runFakeReads(t *testing.T, api *fakeReadAPI, n, limit int) (*ReadStats, *countingPacer) {
	t.Helper()
	pctx, stop := context.WithCancel(context.Background())
	defer stop()
	pace := &countingPacer{limit: limit, stop: stop}
	rd := newReader(api, recentOfEveryWriter(), pace)
	rd.run(pctx, context.Background(), n, 7)
	return rd.stats(1), pace
}

func TestReader_MixAndAccounting(t *testing.T) {
	api := newFakeReadAPI(t, 0)
	s, pace := runFakeReads(t, api, 1, 2000)

	// Every read the pacer let through is one request, accounted once.
	assert.Equal(t, pace.passed, s.Reads)
	assert.Equal(t, api.requests, s.Reads)
	assert.Equal(t, api.rows, s.Rows)
	assert.Zero(t, s.Errors)
	assert.Empty(t, s.ErrorClasses)
	for _, typ := range readTypes {
		bt := s.ByType[typ]
		require.NotNil(t, bt, typ)
		assert.Equal(t, api.byType[typ], bt.Reads, typ)
		require.NotNil(t, bt.Latency, typ)
		assert.Equal(t, bt.Reads, bt.Latency.N, typ)
	}

	// The mix: every filter, drawn from what the writers set; timelines
	// only of remediations pages named; one or two more pages sometimes.
	firstPages := s.ByType[readPage].Reads
	total := 0
	for _, f := range readFilters {
		assert.Positive(t, s.Filters[f.name], f.name)
		assert.Equal(t, api.filters[f.name], s.Filters[f.name], f.name)
		total += s.Filters[f.name]
	}
	assert.Equal(t, firstPages, total)
	for _, id := range api.timelines {
		assert.True(t, api.named[id], "timeline of %s, which no page named", id)
	}
	sessions := float64(firstPages + s.ByType[readTimeline].Reads)
	assert.InDelta(t, timelineShare, float64(s.ByType[readTimeline].Reads)/sessions, 0.1)
	next := s.ByType[readNextPage].Reads
	assert.Positive(t, next)
	// A cursor is followed after at most followShare of the first pages
	// with one (every query but a remediationRequestID one), twice at most.
	assert.LessOrEqual(t, next, 2*firstPages)
	assert.InDelta(t, followShare*(1+followTwiceShare), float64(next)/float64(firstPages-s.Filters["remediationRequestID"]), 0.15)
}

func TestReader_CountsEveryFailedReadUnderConcurrency(t *testing.T) {
	api := newFakeReadAPI(t, 7)
	s, pace := runFakeReads(t, api, readers, 1000)

	assert.Equal(t, pace.passed, s.Reads)
	assert.Equal(t, api.requests, s.Reads)
	assert.Equal(t, api.failed, s.Errors)
	assert.Equal(t, map[string]int{"503 unavailable": api.failed}, s.ErrorClasses)
	assert.Equal(t, api.rows, s.Rows)
	sum := 0
	for _, typ := range readTypes {
		bt := s.ByType[typ]
		sum += bt.Errors
		if bt.Latency != nil {
			assert.Equal(t, bt.Reads-bt.Errors, bt.Latency.N, "latency only of the reads answered 200: %s", typ)
		}
	}
	assert.Equal(t, s.Errors, sum)
	for _, id := range api.timelines {
		assert.True(t, api.named[id], "timeline of %s, which no page named", id)
	}
}

func TestReader_WaitsForAnAcknowledgedRecordBeforeReading(t *testing.T) {
	api := newFakeReadAPI(t, 0)
	pace := &countingPacer{limit: 10, stop: func() {}}
	rd := newReader(api, loadgen.NewRecent(4), pace)
	rng := newTestRand()
	for range 20 {
		assert.False(t, rd.session(context.Background(), context.Background(), rng))
	}
	assert.Zero(t, pace.passed)
	assert.Zero(t, api.requests)
	assert.Zero(t, rd.stats(1).Reads)
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
