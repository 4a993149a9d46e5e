package central

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/wire"
)

func parse(t *testing.T, kind wire.Kind, query string) (*readQuery, error) {
	t.Helper()
	var args fasthttp.Args
	args.Parse(query)
	return parseReadQuery(kind, &args)
}

func fieldOf(err error) string {
	var ve *wire.ValidationError
	if errors.As(err, &ve) {
		return ve.Field
	}
	return "<not a validation error: " + err.Error() + ">"
}

func TestParseReadQuery_DefaultsAndFilters(t *testing.T) {
	q, err := parse(t, wire.KindRemediation, "")
	require.NoError(t, err)
	assert.Equal(t, DefaultPageSize, q.limit)
	assert.False(t, q.ascending)
	assert.Empty(t, q.filters)
	assert.Nil(t, q.after)

	q, err = parse(t, wire.KindRemediation,
		"cluster=prod-1&namespace=a%2Fb&serviceAccount=ns%2Fgateway-sa&since=2026-01-01T00:00:00.1234567Z&until=2026-02-01T00:00:00Z&limit=1000&order=asc")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"cluster": "prod-1", "namespace": "a/b", "serviceAccount": "ns/gateway-sa"}, q.filters)
	assert.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 123456000, time.UTC), q.since.UTC(), "bounds have the stored precision, µs")
	assert.Equal(t, 1000, q.limit)
	assert.True(t, q.ascending)
	assert.Equal(t, 1001, q.storageQuery().Limit, "one more row than the page tells whether another follows")

	q, err = parse(t, wire.KindWorkflow, "workflowID=wf-1&stepName=drain&stepStatus=failed")
	require.NoError(t, err)
	assert.Len(t, q.filters, 3)
}

func TestParseReadQuery_RefusesBadInputNamingTheParameter(t *testing.T) {
	for query, field := range map[string]string{
		"clustr=prod":                "clustr",
		"workflowID=wf":              "workflowID", // a workflow filter on remediation audits
		"cluster=a&cluster=b":        "cluster",
		"cluster=":                   "cluster",
		"limit=0":                    "limit",
		"limit=1001":                 "limit",
		"limit=ten":                  "limit",
		"order=newest":               "order",
		"since=yesterday":            "since",
		"until=2026-13-01T00:00:00Z": "until",
		"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z": "until",
		"since=2026-02-01T00:00:00Z&until=2026-02-01T00:00:00Z": "until",
		"cursor=%%%":                             "cursor",
		"cursor=AQ":                              "cursor",
		"cursor=" + strings.Repeat("A", 2000):    "cursor",
		"alertName=" + strings.Repeat("x", 1025): "alertName",
		"alertName=%ff%fe":                       "alertName",
	} {
		t.Run(query[:min(len(query), 40)], func(t *testing.T) {
			_, err := parse(t, wire.KindRemediation, query)
			require.Error(t, err)
			assert.Equal(t, field, fieldOf(err))
		})
	}
}

func TestCursor_RoundTripsAndIsBoundToItsQuery(t *testing.T) {
	q, err := parse(t, wire.KindRemediation, "cluster=prod-1&limit=2")
	require.NoError(t, err)
	at := time.Date(2026, 11, 30, 12, 0, 0, 123456000, time.UTC)
	rows := []wire.AuditEntry{
		{AuditID: "audit-1", ServiceAccount: "ns/a", OccurredAt: at.Add(time.Second)},
		{AuditID: "audit-2/x", ServiceAccount: "ns/b", OccurredAt: at},
		{AuditID: "audit-3", ServiceAccount: "ns/c", OccurredAt: at},
	}
	page := q.page(rows)
	require.Len(t, page.Records, 2)
	require.NotEmpty(t, page.NextCursor)
	assert.Empty(t, q.page(rows[:2]).NextCursor, "a page that holds the last row has no cursor")
	assert.Equal(t, []wire.AuditEntry{}, q.page(nil).Records, "an empty page is [], not null")

	next, err := parse(t, wire.KindRemediation, "cluster=prod-1&limit=50&cursor="+page.NextCursor)
	require.NoError(t, err, "the page size may change between pages")
	require.NotNil(t, next.after)
	assert.Equal(t, "audit-2/x", next.after.ID)
	assert.Equal(t, "ns/b", next.after.ServiceAccount)
	assert.True(t, at.Equal(next.after.OccurredAt))

	for _, other := range []string{
		"cluster=prod-2", "cluster=prod-1&order=asc", "cluster=prod-1&status=failed",
		"cluster=prod-1&since=2026-01-01T00:00:00Z", "",
	} {
		_, err := parse(t, wire.KindRemediation, other+"&cursor="+page.NextCursor)
		require.Error(t, err, other)
		assert.Equal(t, "cursor", fieldOf(err))
		assert.Contains(t, err.Error(), "another query")
	}
	_, err = parse(t, wire.KindWorkflow, "cursor="+page.NextCursor)
	assert.Contains(t, err.Error(), "another query", "a remediation cursor is refused for workflow audits")
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(cursor{at: time.Unix(1, 0), sa: "ns/a", id: "audit-1"}.encode())
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s, [8]byte{})
		if err != nil {
			return
		}
		again, err := decodeCursor(c.encode(), [8]byte{})
		require.NoError(t, err)
		assert.Equal(t, c.sa, again.sa)
		assert.Equal(t, c.id, again.id)
		assert.True(t, c.at.Equal(again.at))
	})
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"": false, "gzip": true, "br, gzip;q=0.5": true, "GZIP": true, "gzip;q=0": false, "deflate": false, "x-gzip": false,
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set("Accept-Encoding", h)
		assert.Equal(t, want, acceptsGzip(&ctx), h)
	}
}
