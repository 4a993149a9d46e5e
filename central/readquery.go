package central

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// Read API limits.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// maxParamLen bounds a query parameter's value: the longest column a
	// filter compares is 255 characters; a cursor is shorter than this.
	maxParamLen = 1024
)

// readQuery is a parsed GET /api/v1/audit/{remediation,workflow}.
type readQuery struct {
	kind      wire.Kind
	filters   map[string]string // API field name → value
	since     time.Time         // inclusive; zero: unbounded
	until     time.Time         // exclusive; zero: unbounded
	ascending bool
	limit     int
	after     *storage.Position // from the cursor; nil on the first page
}

func badParam(name, message string) error {
	return &wire.ValidationError{Field: name, Message: message}
}

// queryParams returns the request's query parameters, refusing a name not
// in known and a name given twice: a parameter the server would ignore (a
// misspelt filter) must not silently widen an audit query.
func queryParams(args *fasthttp.Args, known ...[]string) (map[string]string, error) {
	return queryParamsUpTo(args, maxParamLen, known...)
}

// queryParamsUpTo is queryParams with values of up to maxLen bytes.
func queryParamsUpTo(args *fasthttp.Args, maxLen int, known ...[]string) (map[string]string, error) {
	params := make(map[string]string, args.Len())
	for k, v := range args.All() {
		name := string(k)
		if !slices.ContainsFunc(known, func(names []string) bool { return slices.Contains(names, name) }) {
			return nil, badParam(name, "unknown query parameter "+strconv.Quote(name)+"; known: "+strings.Join(slices.Concat(known...), ", "))
		}
		if _, dup := params[name]; dup {
			return nil, badParam(name, "query parameter "+strconv.Quote(name)+" is given more than once")
		}
		if len(v) > maxLen || !utf8.Valid(v) {
			return nil, badParam(name, "query parameter "+strconv.Quote(name)+" must be valid UTF-8 of at most "+strconv.Itoa(maxLen)+" bytes")
		}
		params[name] = string(v)
	}
	return params, nil
}

var (
	rangeParams = []string{"since", "until"}
	pageParams  = []string{"limit", "order", "cursor"}
)

// parseReadQuery parses the query of GET /api/v1/audit/{kind}.
func parseReadQuery(kind wire.Kind, args *fasthttp.Args) (*readQuery, error) {
	fields := storage.FilterFields(kind)
	params, err := queryParams(args, fields, rangeParams, pageParams)
	if err != nil {
		return nil, err
	}
	q := &readQuery{kind: kind, filters: make(map[string]string), limit: DefaultPageSize}
	for _, f := range fields {
		if v, ok := params[f]; ok {
			if v == "" {
				return nil, badParam(f, f+" must not be empty: leave it out to match every value")
			}
			q.filters[f] = v
		}
	}
	if q.since, q.until, err = parseRange(params); err != nil {
		return nil, err
	}
	if v, ok := params["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return nil, badParam("limit", "limit must be a whole number from 1 to "+strconv.Itoa(MaxPageSize))
		}
		q.limit = n
	}
	switch params["order"] {
	case "", "desc":
	case "asc":
		q.ascending = true
	default:
		return nil, badParam("order", `order must be "desc" (newest first, the default) or "asc"`)
	}
	if v, ok := params["cursor"]; ok {
		c, err := decodeCursor(v, q.fingerprint())
		if err != nil {
			return nil, badParam("cursor", err.Error())
		}
		q.after = &storage.Position{OccurredAt: c.at, ServiceAccount: c.sa, ID: c.id}
	}
	return q, nil
}

// parseRange reads since and until (RFC 3339, on the records' event time):
// since ≤ t < until, each optional.
func parseRange(params map[string]string) (since, until time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		v, ok := params[name]
		if !ok {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, badParam(name, name+" must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z")
		}
		// Stored times have microsecond precision; so do the bounds.
		return t.Truncate(time.Microsecond), nil
	}
	if since, err = parse("since"); err != nil {
		return
	}
	if until, err = parse("until"); err != nil {
		return
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return time.Time{}, time.Time{}, badParam("until", "until must be after since")
	}
	return since, until, nil
}

// storageQuery is q for storage, one row more than the page so that the
// page knows whether another follows.
func (q *readQuery) storageQuery() storage.AuditQuery {
	return storage.AuditQuery{
		Kind: q.kind, Filters: q.filters, Since: q.since, Until: q.until,
		Ascending: q.ascending, After: q.after, Limit: q.limit + 1,
	}
}

// page is the answer for rows, read with storageQuery.
func (q *readQuery) page(rows []wire.AuditEntry) wire.AuditPage {
	page := wire.AuditPage{Records: rows}
	if len(rows) > q.limit {
		page.Records = rows[:q.limit]
		last := storage.PositionOf(&page.Records[q.limit-1])
		page.NextCursor = cursor{query: q.fingerprint(), at: last.OccurredAt, sa: last.ServiceAccount, id: last.ID}.encode()
	}
	if page.Records == nil {
		page.Records = []wire.AuditEntry{}
	}
	return page
}
