package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ReloadingClient returns a client *tls.Config (TLS 1.2 minimum, modern
// cipher suites) for connections to serverName (a DNS name or an IP
// address), verified against the PEM CA bundle in caFile, which it re-reads,
// at most every checkInterval (0: DefaultCheckInterval), when a handshake
// needs it: a CA rotated in a mounted Secret or ConfigMap is trusted without
// a restart. A replacement that cannot be read or holds no certificate goes
// to onError (once per distinct error; nil: ignored) and the previous bundle
// stays in use.
//
// crypto/tls reads RootCAs once per Config, so verification is done here, in
// VerifyConnection, as crypto/tls would do it (chain to the current roots,
// serverName), with crypto/tls's own verification switched off.
func ReloadingClient(caFile, serverName string, checkInterval time.Duration, onError func(error)) (*tls.Config, error) {
	if serverName == "" {
		return nil, errors.New("tls client: a server name to verify is required")
	}
	if checkInterval <= 0 {
		checkInterval = DefaultCheckInterval
	}
	if onError == nil {
		onError = func(error) {}
	}
	pool, b, err := readCAFile(caFile)
	if err != nil {
		return nil, err
	}
	r := &rootsReloader{file: caFile, serverName: serverName, interval: checkInterval, onError: onError, last: b}
	r.pool.Store(pool)
	r.nextCheck.Store(time.Now().Add(checkInterval).UnixNano())
	cfg := baseConfig()
	cfg.ServerName = serverName   // SNI (for a DNS name), and what net/http keeps
	cfg.InsecureSkipVerify = true // verified by r.verify, against the current roots
	cfg.VerifyConnection = r.verify
	return cfg, nil
}

// rootsReloader holds the current CA pool of a ReloadingClient.
type rootsReloader struct {
	file       string
	serverName string
	interval   time.Duration
	onError    func(error)
	pool       atomic.Pointer[x509.CertPool]
	nextCheck  atomic.Int64 // unix nanoseconds of the earliest next look

	mu      sync.Mutex // held by the one handshake that reloads
	last    []byte     // contents of the last good read
	lastErr string     // the last reported error, to report it once
}

func (r *rootsReloader) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls client: the server presented no certificate")
	}
	r.maybeReload()
	opts := x509.VerifyOptions{DNSName: r.serverName, Roots: r.pool.Load(), Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

// maybeReload re-reads the file if the interval has passed; one concurrent
// handshake does it while the others go on with the current pool.
func (r *rootsReloader) maybeReload() {
	now := time.Now().UnixNano()
	next := r.nextCheck.Load()
	if now < next || !r.nextCheck.CompareAndSwap(next, now+int64(r.interval)) || !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	b, err := os.ReadFile(r.file)
	if err == nil && bytes.Equal(b, r.last) {
		r.lastErr = ""
		return
	}
	var pool *x509.CertPool
	if err == nil {
		pool, err = certPool(r.file, b)
	}
	if err != nil {
		if msg := err.Error(); msg != r.lastErr {
			r.lastErr = msg
			r.onError(fmt.Errorf("tls client: reload CA (keeping the previous bundle): %w", err))
		}
		return
	}
	r.last, r.lastErr = b, ""
	r.pool.Store(pool)
}
