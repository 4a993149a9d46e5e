package forward_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	fakecentral "github.com/kubernaut/datastorage/agent/agenttest"
	"github.com/kubernaut/datastorage/agent/forward"
	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
	"github.com/kubernaut/datastorage/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

type harness struct {
	q       *queue.Queue
	central *fakecentral.Central
	token   string // path of the token file
}

func setup(t *testing.T, cfg forward.Config) (*harness, *forward.Forwarder) {
	t.Helper()
	central := fakecentral.NewCentral("tok-1")
	t.Cleanup(central.Close)
	return setupWith(t, central, cfg)
}

// setupWith is setup against a central of the caller's, which accepts "tok-1".
func setupWith(t *testing.T, central *fakecentral.Central, cfg forward.Config) (*harness, *forward.Forwarder) {
	t.Helper()
	h := &harness{central: central, token: filepath.Join(t.TempDir(), "token")}
	require.NoError(t, os.WriteFile(h.token, []byte("tok-1\n"), 0o600))
	q, err := queue.Open(queue.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	h.q = q
	cfg.CentralURL = h.central.URL
	cfg.Insecure = true // the fake central is plain http
	cfg.TokenFile = h.token
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	f, err := forward.New(cfg, q)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, f.Close(ctx))
		require.NoError(t, q.Close(ctx))
	})
	return h, f
}

var seq atomic.Int64

func records(t *testing.T, n int) []wire.RawRecord {
	t.Helper()
	out := make([]wire.RawRecord, n)
	for i := range out {
		out[i] = wire.RawRecord{
			ID: wire.NewID(), Kind: wire.KindRemediation, ReceivedAt: time.Now().UTC(),
			Body: fmt.Appendf(nil, `{"remediationRequestID":"rr-%d"}`, seq.Add(1)),
		}
	}
	return out
}

func idsOf(recs []wire.RawRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// drained waits until the queue is empty and returns the central's stored IDs.
func (h *harness) drained(t *testing.T) []string {
	t.Helper()
	require.Eventually(t, func() bool { return h.q.Depth().Records == 0 }, 10*time.Second, 5*time.Millisecond,
		"queue not drained; depth %+v", h.q.Depth())
	return h.central.Stored()
}

func TestForwarder_DeliversInOrderAndEmptiesTheQueue(t *testing.T) {
	h, _ := setup(t, forward.Config{BatchMaxRecords: 7})
	recs := records(t, 30)
	require.NoError(t, h.q.Append(context.Background(), recs))
	assert.Equal(t, idsOf(recs), h.drained(t))
	for _, r := range h.central.Requests() {
		assert.LessOrEqual(t, len(r.IDs), 7, "batches respect the record limit")
		assert.Equal(t, "tok-1", r.Token)
	}
}

func TestForwarder_HonoursRetryAfterOn429And503(t *testing.T) {
	for _, status := range []int{429, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			h, _ := setup(t, forward.Config{})
			h.central.Script(fakecentral.Reply{Status: status, RetryAfter: "1"})
			recs := records(t, 3)
			require.NoError(t, h.q.Append(context.Background(), recs))
			assert.Equal(t, idsOf(recs), h.drained(t))
			reqs := h.central.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, reqs[0].IDs, reqs[1].IDs, "the same batch is resent")
			assert.GreaterOrEqual(t, reqs[1].At.Sub(reqs[0].At), 950*time.Millisecond, "Retry-After: 1 was not honoured")
		})
	}
}

func TestForwarder_SplitsABatchRefusedAsTooLarge(t *testing.T) {
	h, _ := setup(t, forward.Config{BatchMaxRecords: 20})
	h.central.SetMaxBatch(6)
	recs := records(t, 20)
	require.NoError(t, h.q.Append(context.Background(), recs))
	assert.Equal(t, idsOf(recs), h.drained(t), "every record arrives once, in order")
	var sawTooLarge bool
	for _, r := range h.central.Requests() {
		if r.Status == 413 {
			sawTooLarge = true
		} else {
			assert.LessOrEqual(t, len(r.IDs), 6)
		}
	}
	assert.True(t, sawTooLarge)
	assert.EqualValues(t, 0, h.q.DeadLetters())
}

func TestForwarder_DeadLettersRejectedRecordsWithTheReason(t *testing.T) {
	h, _ := setup(t, forward.Config{})
	recs := records(t, 5)
	bad := recs[2].ID
	h.central.Reject(func(r wire.Record) *wire.ErrorBody {
		if r.ID == bad {
			return wire.ValidationFailed("confidence", "Confidence must be between 0 and 1")
		}
		return nil
	})
	require.NoError(t, h.q.Append(context.Background(), recs))
	want := append(idsOf(recs[:2]), idsOf(recs[3:])...)
	assert.Equal(t, want, h.drained(t))

	dead, err := h.q.ListDeadLetters(context.Background(), 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, bad, dead[0].ID)
	assert.Equal(t, "validation_failed: Confidence must be between 0 and 1 (field confidence)", dead[0].Reason)
	assert.Len(t, h.central.Requests(), 1, "a rejected record is not retried")
}

func TestForwarder_BacksOffOnServerErrorsAndResendsTheSameIDs(t *testing.T) {
	h, _ := setup(t, forward.Config{})
	h.central.Script(fakecentral.Reply{Status: 500}, fakecentral.Reply{Status: 502}, fakecentral.Reply{Status: 500})
	recs := records(t, 4)
	require.NoError(t, h.q.Append(context.Background(), recs))
	assert.Equal(t, idsOf(recs), h.drained(t))
	reqs := h.central.Requests()
	require.Len(t, reqs, 4)
	for _, r := range reqs {
		assert.Equal(t, idsOf(recs), r.IDs)
	}
	assert.Greater(t, reqs[3].At.Sub(reqs[2].At), reqs[1].At.Sub(reqs[0].At)/2, "backoff grows (with jitter)")
}

func TestForwarder_RetriesAfter401AndPicksUpARotatedToken(t *testing.T) {
	h, _ := setup(t, forward.Config{})
	recs := records(t, 2)
	require.NoError(t, h.q.Append(context.Background(), recs))
	assert.Equal(t, idsOf(recs), h.drained(t))

	// The central now wants a new token; the kubelet rotates the file a bit later.
	h.central.SetToken("tok-2")
	more := records(t, 2)
	require.NoError(t, h.q.Append(context.Background(), more))
	require.Eventually(t, func() bool {
		reqs := h.central.Requests()
		return reqs[len(reqs)-1].Status == 401
	}, 5*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 2, h.q.Depth().Records, "a 401 never drops or dead-letters")
	tmp := h.token + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte("tok-2"), 0o600))
	require.NoError(t, os.Rename(tmp, h.token))

	assert.Equal(t, append(idsOf(recs), idsOf(more)...), h.drained(t))
	reqs := h.central.Requests()
	assert.Equal(t, "tok-2", reqs[len(reqs)-1].Token)
	assert.EqualValues(t, 0, h.q.DeadLetters())
}

func TestForwarder_CloseFlushesWithinTheGracePeriod(t *testing.T) {
	h, f := setup(t, forward.Config{Linger: time.Hour, BatchMaxRecords: 1000})
	recs := records(t, 10)
	require.NoError(t, h.q.Append(context.Background(), recs))
	time.Sleep(20 * time.Millisecond)
	assert.Empty(t, h.central.Stored(), "lingering below the batch limits")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.Close(ctx))
	assert.Equal(t, idsOf(recs), h.central.Stored())
}

func TestForwarder_CloseLeavesUnsentRecordsOnDisk(t *testing.T) {
	h, f := setup(t, forward.Config{})
	h.central.Script(fakecentral.Reply{Status: 503, RetryAfter: "60"})
	recs := records(t, 3)
	require.NoError(t, h.q.Append(context.Background(), recs))
	require.Eventually(t, func() bool { return len(h.central.Requests()) == 1 }, 5*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.NoError(t, f.Close(ctx))
	assert.EqualValues(t, 3, h.q.Depth().Records)
}

func TestConfig_ValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg  forward.Config
		want string
	}{
		{forward.Config{}, "CentralURL"},
		{forward.Config{CentralURL: "ftp://x"}, "CentralURL"},
		{forward.Config{CentralURL: "http://x", Insecure: true, BatchMaxRecords: wire.MaxBatchRecords + 1}, "BatchMaxRecords"},
		{forward.Config{CentralURL: "http://x"}, "CentralURL"},
		{forward.Config{CentralURL: "https://x", ClientCertFile: "tls.crt"}, "ClientKeyFile"},
		{forward.Config{CentralURL: "https://x", ClientKeyFile: "tls.key"}, "ClientCertFile"},
		{forward.Config{CentralURL: "http://x", Insecure: true, ClientCertFile: "tls.crt", ClientKeyFile: "tls.key"}, "https"},
	} {
		err := c.cfg.Validate()
		require.Error(t, err)
		assert.True(t, strings.Contains(err.Error(), c.want), err.Error())
	}
}

func TestForwarder_DeliversOverTLSTrustingTheCAFile(t *testing.T) {
	central := fakecentral.NewTLSCentral("")
	t.Cleanup(central.Close)
	ca, err := central.WriteCAFile(t.TempDir())
	require.NoError(t, err)
	q, err := queue.Open(queue.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	f, err := forward.New(forward.Config{CentralURL: central.URL, CAFile: ca, Linger: time.Millisecond}, q)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, f.Close(ctx))
		require.NoError(t, q.Close(ctx))
	})
	recs := records(t, 3)
	require.NoError(t, q.Append(context.Background(), recs))
	require.Eventually(t, func() bool { return len(central.Stored()) == 3 }, 5*time.Second, 5*time.Millisecond)
	assert.ElementsMatch(t, idsOf(recs), central.Stored())
}

func TestNew_RefusesPlainHTTPUnlessInsecureAndABadCAFile(t *testing.T) {
	q, err := queue.Open(queue.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close(context.Background())) })

	_, err = forward.New(forward.Config{CentralURL: "http://central:8080"}, q)
	require.ErrorIs(t, err, forward.ErrPlainHTTP)

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	_, err = forward.New(forward.Config{CentralURL: "https://central:8080", CAFile: notPEM}, q)
	require.ErrorContains(t, err, "no PEM certificate")
	_, err = forward.New(forward.Config{CentralURL: "https://central:8080", CAFile: filepath.Join(t.TempDir(), "missing")}, q)
	require.ErrorContains(t, err, "CA file")
}

// The central's messages may quote a record ("… (got 1e999)"): they are kept
// in the dead letter for the operator, never written to the log.
func TestForwarder_LogsNoRecordContentEvenAtDebug(t *testing.T) {
	const marker = "M4RKER-rec0rd-c0ntent"
	logs := &syncbuf.Buffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	central := fakecentral.NewCentral("")
	t.Cleanup(central.Close)
	q, err := queue.Open(queue.Config{Dir: t.TempDir(), Logger: log})
	require.NoError(t, err)
	f, err := forward.New(forward.Config{CentralURL: central.URL, Insecure: true, Linger: time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Logger: log}, q)
	require.NoError(t, err)

	recs := records(t, 2)
	central.Script(fakecentral.Reply{Status: 400, Body: wire.ValidationFailed("records", "Malformed JSON (got "+marker+")")})
	central.Reject(func(r wire.Record) *wire.ErrorBody {
		if r.ID == recs[0].ID {
			return wire.ValidationFailed("record.reasoning", "Reasoning must be a string (got "+marker+")")
		}
		return nil
	})
	require.NoError(t, q.Append(context.Background(), recs))
	require.Eventually(t, func() bool { return q.Depth().Records == 0 }, 10*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.Close(ctx))
	dead, err := q.ListDeadLetters(ctx, 0)
	require.NoError(t, err)
	require.NoError(t, q.Close(ctx))

	require.Len(t, dead, 1)
	assert.Contains(t, dead[0].Reason, marker, "the operator sees the central's message in the dead letter")
	out := logs.String()
	require.Contains(t, out, "record dead-lettered")
	require.Contains(t, out, "forwarding failed")
	for i, line := range strings.Split(out, "\n") {
		assert.NotContains(t, line, marker, "log line %d", i+1)
	}
}

func workflowRecords(t *testing.T, n int) []wire.RawRecord {
	t.Helper()
	out := make([]wire.RawRecord, n)
	for i := range out {
		out[i] = wire.RawRecord{ID: wire.NewID(), Kind: wire.KindWorkflow, ReceivedAt: time.Now().UTC(),
			Body: []byte(`{"workflowID":"wf-1","stepName":"scale","stepStatus":"completed"}`)}
	}
	return out
}

func TestForwarder_DeadLettersRecordsOfAKindTheCallerMayNotWriteAndDeliversTheRest(t *testing.T) {
	set := metrics.NewSet()
	h, _ := setup(t, forward.Config{Metrics: set, BatchMaxRecords: 10})
	h.central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
	rem, wf := records(t, 3), workflowRecords(t, 2)
	all := []wire.RawRecord{rem[0], wf[0], rem[1], wf[1], rem[2]}
	require.NoError(t, h.q.Append(context.Background(), all))

	assert.Equal(t, idsOf(rem), h.drained(t), "the permitted records are delivered")
	assert.Len(t, h.central.Requests(), 1, "a refused record holds up nothing: no retry")
	dead, err := h.q.ListDeadLetters(context.Background(), 0)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	for i, d := range dead {
		assert.Equal(t, wf[i].ID, d.ID)
		assert.Equal(t, "authorization_failed: ns/gateway-sa may not write workflow audits (field kind)", d.Reason,
			"one reason for the kind, not one per position in a batch")
	}
	assert.EqualValues(t, 3, set.GetOrCreateCounter("agent_forward_records_total").Get(), "delivered records")
	assert.EqualValues(t, 2, set.GetOrCreateCounter("agent_forward_deadlettered_records_total").Get())
}

func TestForwarder_KeepsRetryingABatchRefusedWholeUntilRBACIsFixed(t *testing.T) {
	h, _ := setup(t, forward.Config{})
	h.central.Grant("tok-1", "ns/gateway-sa", fakecentral.ReadSimilar)
	recs := records(t, 3)
	require.NoError(t, h.q.Append(context.Background(), recs))
	require.Eventually(t, func() bool { return len(h.central.Requests()) >= 3 }, 5*time.Second, 5*time.Millisecond)
	for _, r := range h.central.Requests() {
		assert.Equal(t, http.StatusForbidden, r.Status)
	}
	assert.EqualValues(t, 3, h.q.Depth().Records, "a 403 for the whole batch drops nothing")
	assert.Zero(t, h.q.DeadLetters())

	h.central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
	assert.Equal(t, idsOf(recs), h.drained(t))
}

// A batch can hold more refused records than one Badger transaction takes
// (4 MiB of batch, ~600 KiB of transaction): dead-lettering them must not
// fail and wedge the queue behind them.
func TestForwarder_DeadLettersARefusedBatchLargerThanOneTransaction(t *testing.T) {
	h, _ := setup(t, forward.Config{BatchMaxRecords: 500})
	h.central.Grant("tok-1", "ns/gateway-sa", fakecentral.WriteRemediation)
	big := `{"workflowID":"wf-1","stepName":"scale","stepStatus":"failed","errorMessage":"` + strings.Repeat("e", 4<<10) + `"}`
	var wf []wire.RawRecord
	for range 250 { // ~1 MiB
		wf = append(wf, wire.RawRecord{ID: wire.NewID(), Kind: wire.KindWorkflow, ReceivedAt: time.Now().UTC(), Body: []byte(big)})
	}
	for i := 0; i < len(wf); i += 50 {
		require.NoError(t, h.q.Append(context.Background(), wf[i:i+50]))
	}
	after := records(t, 1)
	require.NoError(t, h.q.Append(context.Background(), after))
	assert.Equal(t, idsOf(after), h.drained(t))
	assert.EqualValues(t, 250, h.q.DeadLetters())
}
