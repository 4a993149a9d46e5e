package tlsconfig

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// reloader holds the server's current snapshot and re-reads the files.
type reloader struct {
	ctx       context.Context
	cfg       ServerConfig
	current   atomic.Pointer[tls.Config]
	nextCheck atomic.Int64 // unix nanoseconds of the earliest next look

	mu      sync.Mutex // held by the one handshake that reloads
	last    files      // contents of the last attempt, good or bad
	lastErr string     // read error of the last attempt, to report it once
}

// files are the raw contents of the server's PEM files.
type files struct{ cert, key, ca []byte }

func (f files) equal(o files) bool {
	return bytes.Equal(f.cert, o.cert) && bytes.Equal(f.key, o.key) && bytes.Equal(f.ca, o.ca)
}

func (r *reloader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.maybeReload()
	return r.current.Load(), nil
}

// maybeReload looks at the files if the interval has passed; one concurrent
// handshake does it while the others go on with the current snapshot.
func (r *reloader) maybeReload() {
	if r.ctx.Err() != nil {
		return
	}
	now := r.cfg.Now()
	next := r.nextCheck.Load()
	if now.UnixNano() < next {
		return
	}
	if !r.nextCheck.CompareAndSwap(next, now.Add(r.cfg.CheckInterval).UnixNano()) {
		return
	}
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()

	f, err := r.read()
	if err != nil {
		if msg := err.Error(); msg != r.lastErr {
			r.lastErr = msg
			r.cfg.OnError(fmt.Errorf("tls reload: %w", err))
		}
		return
	}
	r.lastErr = ""
	if f.equal(r.last) {
		return
	}
	r.last = f
	snap, leaf, err := r.build(f)
	if err != nil {
		r.cfg.OnError(fmt.Errorf("tls reload (keeping the previous certificate): %w", err))
		return
	}
	r.current.Store(snap)
	r.cfg.OnReload(leaf)
}

func (r *reloader) read() (files, error) {
	var f files
	var err error
	if f.cert, err = os.ReadFile(r.cfg.CertFile); err != nil {
		return files{}, fmt.Errorf("read certificate: %w", err)
	}
	if f.key, err = os.ReadFile(r.cfg.KeyFile); err != nil {
		return files{}, fmt.Errorf("read key: %w", err)
	}
	if r.cfg.ClientCAFile != "" {
		if f.ca, err = os.ReadFile(r.cfg.ClientCAFile); err != nil {
			return files{}, fmt.Errorf("read client CA: %w", err)
		}
	}
	return f, nil
}

// build parses f into an immutable per-handshake config.
func (r *reloader) build(f files) (*tls.Config, *x509.Certificate, error) {
	cert, err := tls.X509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, nil, fmt.Errorf("load key pair %s, %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("parse certificate %s: %w", r.cfg.CertFile, err)
		}
		cert.Leaf = leaf
	}
	snap := baseConfig()
	snap.Certificates = []tls.Certificate{cert}
	if r.cfg.ClientCAFile != "" {
		pool, err := certPool(r.cfg.ClientCAFile, f.ca)
		if err != nil {
			return nil, nil, err
		}
		snap.ClientAuth = tls.RequireAndVerifyClientCert
		snap.ClientCAs = pool
	}
	return snap, leaf, nil
}
