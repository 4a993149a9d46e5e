package main_test

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/agent/agenttest"
	"github.com/kubernaut/datastorage/agent/forward"
	"github.com/kubernaut/datastorage/wire"
)

const benchBody = `{"remediationRequestID":"rr-abc123","alertName":"HighMemoryUsage","namespace":"production",` +
	`"cluster":"us-west-2","priority":"P0","actionType":"scale_deployment","confidence":0.92,` +
	`"reasoning":"Memory usage above 95% for 10 minutes on three replicas; scaling out is the least disruptive action."}`

// bareServer validates like the agent and answers 201 without storing.
func bareServer(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		rec, err := wire.DecodeAudit(wire.KindRemediation, ctx.PostBody(), time.Now())
		if err != nil {
			ctx.SetStatusCode(400)
			return
		}
		rec.ID = wire.NewID()
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"auditID":"` + rec.ID + `","status":"buffered"}`)
	}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func post(c *fasthttp.Client, addr string) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + "/api/v1/audit/remediation")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyString(benchBody)
	err := c.DoTimeout(req, resp, 10*time.Second)
	return resp.StatusCode(), err
}

// saturate posts from conc goroutines for d and returns 201s per second.
func saturate(b *testing.B, addr string, conc int, d time.Duration) float64 {
	b.Helper()
	c := &fasthttp.Client{MaxConnsPerHost: conc}
	var ok, failed atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if s, err := post(c, addr); err == nil && s == fasthttp.StatusCreated {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(b, failed.Load(), "requests failed under load")
	return float64(ok.Load()) / d.Seconds()
}

// latencies sends rate requests per second for d and returns sorted latencies.
func latencies(b *testing.B, addr string, rate int, d time.Duration) []time.Duration {
	b.Helper()
	c := &fasthttp.Client{MaxConnsPerHost: 256}
	var (
		mu  sync.Mutex
		out []time.Duration
		wg  sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); {
		<-tick.C
		wg.Go(func() {
			start := time.Now()
			s, err := post(c, addr)
			if err != nil || s != fasthttp.StatusCreated {
				b.Errorf("status %d, %v", s, err)
				return
			}
			mu.Lock()
			out = append(out, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(out)
	return out
}

// BenchmarkIngest compares, in one run, the agent's durable ingest (fsync
// before 201, forwarding to a fake central at the same time) with a bare
// fasthttp handler that validates and answers 201 without storing, and
// reports latency and CPU per record at a moderate fixed rate, fsyncs per
// record and RSS.
// Run: go test -run '^$' -bench Ingest -benchtime 1x ./cmd/agent
func BenchmarkIngest(b *testing.B) {
	const (
		conc     = 64
		duration = 3 * time.Second
		rate     = 1000
	)
	central := agenttest.NewCentral("")
	b.Cleanup(central.Close)
	bare := bareServer(b)
	a := startAgent(b, b.TempDir(), central.URL, "--linger", forward.DefaultLinger.String()) // as deployed
	time.Sleep(300 * time.Millisecond)
	idleRSS := a.procStatus(b, "VmRSS")

	for b.Loop() {
		bareRate := saturate(b, bare, conc, duration)
		agentRate := saturate(b, a.listen, conc, duration)
		// Let the forwarder drain the saturation's backlog first, so that the
		// CPU below is what a steady 1000 records/s costs.
		deadline := time.Now().Add(30 * time.Second)
		for a.metric(b, "agent_queue_buffered_records") > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		cpu0 := a.metric(b, "process_cpu_seconds_total")
		lat := latencies(b, a.listen, rate, 2*time.Second)
		cpuPerRecord := (a.metric(b, "process_cpu_seconds_total") - cpu0) / float64(len(lat))
		commits := a.metric(b, "agent_queue_commits_total")
		appended := a.metric(b, "agent_queue_appended_records_total")
		peak := a.procStatus(b, "VmHWM")

		b.ReportMetric(bareRate, "bare_201/s")
		b.ReportMetric(agentRate, "agent_201/s")
		b.ReportMetric(agentRate/bareRate, "agent/bare")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms@1000rps")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms@1000rps")
		b.ReportMetric(cpuPerRecord*1e6, "cpu_µs/record@1000rps")
		b.ReportMetric(commits/appended, "fsyncs/record")
		b.ReportMetric(float64(idleRSS)/1024, "idle_RSS_MiB")
		b.ReportMetric(float64(peak)/1024, "peak_RSS_MiB")
		b.Logf("appended %.0f records in %.0f commits; central stored %d", appended, commits, len(central.Stored()))
	}
	a.term(b)
}
