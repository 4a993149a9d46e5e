package tlsconfig_test

import (
	"crypto/tls"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// clock is a manual clock for ServerConfig.Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time              { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration)     { c.ns.Add(int64(d)) }
func (c *clock) AdvancePast(d time.Duration) { c.Advance(d + time.Nanosecond) }

// errorSink collects OnError reports.
type errorSink struct {
	mu   sync.Mutex
	errs []error
}

func (e *errorSink) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
}

func (e *errorSink) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

// server is one kind of HTTPS server under test.
type server struct {
	name  string
	serve func(t *testing.T, cfg *tls.Config) string // returns the base URL
}

var servers = []server{
	{name: "net/http", serve: serveNetHTTP},
	{name: "fasthttp", serve: serveFastHTTP},
}

func serveNetHTTP(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("ok"))
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          nil,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, cfg))
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "https://" + ln.Addr().String()
}

func serveFastHTTP(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if !ctx.IsTLS() {
				ctx.SetStatusCode(fasthttp.StatusInternalServerError)
				return
			}
			ctx.SetBodyString("ok")
		},
		ReadTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, cfg))
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return "https://" + ln.Addr().String()
}

// get makes one request on a fresh connection (no keep-alive, no session
// resumption) and returns the serial of the certificate the server presented.
func get(t *testing.T, url string, cfg *tls.Config) (*big.Int, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Get(url + "/")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, nil
}

// mustGet is get that fails the test on error.
func mustGet(t *testing.T, url string, cfg *tls.Config) *big.Int {
	t.Helper()
	serial, err := get(t, url, cfg)
	require.NoError(t, err)
	return serial
}

// writeFile writes b into a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

func removeFile(p string) error { return os.Remove(p) }
