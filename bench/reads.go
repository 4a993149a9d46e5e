package bench

import (
	"context"
	"iter"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kubernaut/datastorage/bench/loadgen"
	"github.com/kubernaut/datastorage/client"
	"github.com/kubernaut/datastorage/internal/backoff"
	"github.com/kubernaut/datastorage/wire"
)

// The sidecar-reads scenario adds, to the sidecar scenario's write load, a
// reader that reads the history back the way the AI Analysis controller
// does while incidents flow: paced reads of the central's read API, as
// loadgen.ReaderSA, each one request.

// Read types, as reported.
const (
	readPage     = "page"      // the newest readPageSize remediation audits under one filter
	readNextPage = "next-page" // a further page of that query, following nextCursor
	readTimeline = "timeline"  // one remediation's timeline
)

// readTypes is the report order of the read types.
var readTypes = []string{readPage, readNextPage, readTimeline}

// The reader's mix. A session is a timeline (timelineShare of sessions,
// once a page has named a remediation) or a query: a first page under one
// filter, then with followShare one more page by its cursor, and with
// followShare·followTwiceShare two more.
const (
	// readers is how many read at once, sharing one pacer: enough that the
	// pacer, not the reads' latency under load, sets the rate.
	readers          = 8
	readPageSize     = 100 // records per page
	timelineShare    = 0.35
	followShare      = 0.3
	followTwiceShare = 0.5
	// seenRemediations is how many remediation IDs from pages are kept for
	// timelines; each page gives its newest seenPerPage.
	seenRemediations = 256
	seenPerPage      = 10
	readTimeout      = 10 * time.Second // one read, as the client's default
)

// readFilter is a remediation field the reader filters on, with its value
// in a written record ("" when the writer does not set it).
type readFilter struct {
	name  string
	value func(*wire.RemediationAudit) string
}

// readFilters are the filters drawn from, with equal chances: the values of
// every one come from acknowledged records (Gateway and AI Analysis set
// cluster, namespace and alertName; AI Analysis and the Executor
// actionType; the Executor status; all three remediationRequestID).
var readFilters = []readFilter{
	{"cluster", func(a *wire.RemediationAudit) string { return a.Cluster }},
	{"namespace", func(a *wire.RemediationAudit) string { return a.Namespace }},
	{"alertName", func(a *wire.RemediationAudit) string { return a.AlertName }},
	{"remediationRequestID", func(a *wire.RemediationAudit) string { return a.RemediationRequestID }},
	{"actionType", func(a *wire.RemediationAudit) string { return a.ActionType }},
	{"status", func(a *wire.RemediationAudit) string { return a.Status }},
}

// ReadStats is what the sidecar-reads scenario's reader did.
type ReadStats struct {
	// ServiceAccount is who read ("namespace/name"), Readers how many read
	// at once, TargetRate the reads per second their shared pacer allows.
	ServiceAccount string  `json:"service_account"`
	Readers        int     `json:"readers"`
	TargetRate     float64 `json:"target_rate"`
	Seconds        float64 `json:"seconds"`
	// Reads counts requests sent: every page and every timeline is one.
	Reads       int     `json:"reads"`
	ReadsPerSec float64 `json:"reads_per_s"`
	// Errors counts reads without a 200 answer (any other status, a
	// timeout, a network error); ErrorClasses by loadgen.ErrorClass.
	Errors       int            `json:"errors"`
	ErrorClasses map[string]int `json:"error_classes,omitempty"`
	Rows         int            `json:"rows"`
	// ByType is per read type: page, next-page, timeline.
	ByType map[string]*ReadTypeStats `json:"by_type"`
	// Filters counts first pages by the field they filtered on.
	Filters map[string]int `json:"filters"`
	// EmptyPages counts first pages that matched nothing: mostly a
	// remediationRequestID an agent acknowledged and had not forwarded yet,
	// and in the load's first moments values the central had not stored.
	EmptyPages int `json:"empty_pages"`
}

// ReadTypeStats is one read type's reads.
type ReadTypeStats struct {
	Reads  int `json:"reads"`
	Errors int `json:"errors"`
	Rows   int `json:"rows"`
	// Latency is of the reads answered 200, from the request to the
	// decoded answer.
	Latency *Percentiles `json:"latency,omitempty"`
}

// auditReader is the read API the reader uses; *client.Client implements
// it (tests fake it).
type auditReader interface {
	AuditPages(ctx context.Context, q client.Query) iter.Seq2[*wire.AuditPage, error]
	Timeline(ctx context.Context, remediationRequestID string) (*wire.Timeline, error)
}

// pacer holds each read until its turn; *rate.Limiter implements it.
type pacer interface {
	Wait(ctx context.Context) error
}

// reader reads while the load writes, and keeps the accounts.
type reader struct {
	api    auditReader
	recent *loadgen.Recent
	pace   pacer

	mu        sync.Mutex
	reads     map[string]int
	errs      map[string]int
	rows      map[string]int
	latencies map[string][]time.Duration
	classes   map[string]int
	filters   map[string]int
	empty     int
	seen      []string // remediation IDs from pages, a ring
	seenNext  int
}

func newReader(api auditReader, recent *loadgen.Recent, pace pacer) *reader {
	return &reader{api: api, recent: recent, pace: pace, reads: map[string]int{}, errs: map[string]int{},
		rows: map[string]int{}, latencies: map[string][]time.Duration{}, classes: map[string]int{}, filters: map[string]int{}}
}

// run reads with n concurrent readers until pctx is done; the read in
// flight then finishes under rctx, so that stopping makes no error.
func (r *reader) run(pctx, rctx context.Context, n int, seed uint64) {
	var wg sync.WaitGroup
	for g := range n {
		rng := rand.New(rand.NewPCG(seed, 0x4eade4+uint64(g)))
		wg.Go(func() {
			for pctx.Err() == nil {
				if !r.session(pctx, rctx, rng) {
					// Nothing acknowledged to filter on yet.
					backoff.Sleep(pctx, 10*time.Millisecond, nil)
				}
			}
		})
	}
	wg.Wait()
}

// session reads once or a few times: a timeline, or a query's first page
// and maybe one or two more. It returns false when it could not start,
// because no record has been acknowledged yet.
func (r *reader) session(pctx, rctx context.Context, rng *rand.Rand) bool {
	if rng.Float64() < timelineShare {
		if id := r.seenRemediation(rng); id != "" {
			if r.pace.Wait(pctx) != nil {
				return true
			}
			ctx, cancel := context.WithTimeout(rctx, readTimeout)
			t0 := time.Now()
			tl, err := r.api.Timeline(ctx, id)
			d := time.Since(t0)
			cancel()
			rows := 0
			if tl != nil {
				rows = len(tl.Events)
			}
			r.record(readTimeline, d, rows, err)
			return true
		}
		// No page has named a remediation yet: query instead.
	}
	f := readFilters[rng.IntN(len(readFilters))]
	a := r.recent.Pick(rng, func(a *wire.RemediationAudit) bool { return f.value(a) != "" })
	if a == nil {
		return false
	}
	more := 0
	switch u := rng.Float64(); {
	case u < followShare*followTwiceShare:
		more = 2
	case u < followShare:
		more = 1
	}
	q := client.Query{Kind: wire.KindRemediation, Filters: map[string]string{f.name: f.value(a)}, PageSize: readPageSize}
	if r.pace.Wait(pctx) != nil {
		return true
	}
	r.mu.Lock()
	r.filters[f.name]++
	r.mu.Unlock()
	// Pages are fetched as the loop asks for them; the timeout covers the
	// whole query, up to three pages.
	ctx, cancel := context.WithTimeout(rctx, readTimeout*time.Duration(more+1))
	defer cancel()
	typ, t0 := readPage, time.Now()
	for page, err := range r.api.AuditPages(ctx, q) {
		d := time.Since(t0)
		rows := 0
		if page != nil {
			rows = len(page.Records)
		}
		r.record(typ, d, rows, err)
		if err != nil {
			break
		}
		r.remember(page, typ == readPage)
		if more == 0 || page.NextCursor == "" {
			break
		}
		more--
		if r.pace.Wait(pctx) != nil {
			break
		}
		typ, t0 = readNextPage, time.Now()
	}
	return true
}

// record accounts for one read.
func (r *reader) record(typ string, d time.Duration, rows int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads[typ]++
	if err != nil {
		r.errs[typ]++
		r.classes[loadgen.ErrorClass(err)]++
		return
	}
	r.rows[typ] += rows
	r.latencies[typ] = append(r.latencies[typ], d)
}

// remember keeps the newest remediation IDs of a page for timelines.
func (r *reader) remember(page *wire.AuditPage, first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if first && len(page.Records) == 0 {
		r.empty++
	}
	for i := range min(len(page.Records), seenPerPage) {
		rem := page.Records[i].Remediation
		if rem == nil || rem.RemediationRequestID == "" {
			continue
		}
		if len(r.seen) < seenRemediations {
			r.seen = append(r.seen, rem.RemediationRequestID)
		} else {
			r.seen[r.seenNext] = rem.RemediationRequestID
			r.seenNext = (r.seenNext + 1) % seenRemediations
		}
	}
}

// seenRemediation draws a remediation a page has named: stored, so its
// timeline exists. (One acknowledged by an agent moments ago may not have
// reached the central yet, and its timeline would be a 404.)
func (r *reader) seenRemediation(rng *rand.Rand) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return ""
	}
	return r.seen[rng.IntN(len(r.seen))]
}

// stats summarises the reads of a run that took seconds.
func (r *reader) stats(seconds float64) *ReadStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &ReadStats{Seconds: seconds, ByType: map[string]*ReadTypeStats{}, Filters: map[string]int{}, EmptyPages: r.empty}
	for _, typ := range readTypes {
		t := &ReadTypeStats{Reads: r.reads[typ], Errors: r.errs[typ], Rows: r.rows[typ], Latency: percentiles(r.latencies[typ])}
		s.ByType[typ] = t
		s.Reads += t.Reads
		s.Errors += t.Errors
		s.Rows += t.Rows
	}
	for _, f := range readFilters {
		s.Filters[f.name] = r.filters[f.name]
	}
	if len(r.classes) > 0 {
		s.ErrorClasses = maps.Clone(r.classes)
	}
	if seconds > 0 {
		s.ReadsPerSec = float64(s.Reads) / seconds
	}
	return s
}
