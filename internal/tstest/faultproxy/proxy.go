// Package faultproxy is a TCP forwarder for tests that need a dependency to
// go away and come back: PostgreSQL behind the central, the central behind
// an agent. It is test infrastructure; production code never imports it.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Fault is how the proxy mistreats traffic while it is set (SetFault).
type Fault int

const (
	// None forwards faithfully.
	None Fault = iota
	// DropResponse forwards requests, and when the target's answer arrives
	// discards it and resets both sides: the target did the work (a central
	// committed), the client never learns it (a lost acknowledgement).
	DropResponse
	// ResetRequest forwards the first half of the next chunk a client sends
	// (on a kept-alive connection too), then resets both sides: a request
	// cut off mid-way.
	ResetRequest
	// Stall holds every byte in both directions until the fault changes;
	// then the held bytes flow on (a client may have given up by then).
	Stall
)

func (f Fault) String() string {
	switch f {
	case DropResponse:
		return "drop-response"
	case ResetRequest:
		return "reset-request"
	case Stall:
		return "stall"
	}
	return "none"
}

// Proxy forwards connections from its listener to a target address. While
// down it resets every open connection and refuses new ones; while a Fault
// is set, it applies it to every connection.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	down    bool
	fault   Fault
	changed chan struct{} // closed and replaced when the fault changes
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup

	injected [Stall + 1]int64 // connections a fault acted on, by fault
}

// Start listens on 127.0.0.1 (a free port) and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDown takes the target away (true) or brings it back (false).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			resetAndClose(c)
			delete(p.conns, c)
		}
	}
}

// SetFault sets the fault applied from now on (None: forward faithfully).
func (p *Proxy) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f == p.fault {
		return
	}
	p.fault = f
	close(p.changed)
	p.changed = make(chan struct{})
}

// Injected reports how many times fault f acted: responses dropped,
// requests reset, chunks stalled.
func (p *Proxy) Injected(f Fault) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f < 0 || int(f) >= len(p.injected) {
		return 0
	}
	return p.injected[f]
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.SetFault(None) // release stalled transfers
	p.SetDown(true)
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			resetAndClose(c)
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			resetAndClose(c)
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up, true)
		go p.pipe(up, c, false)
	}
}

// pipe copies src to dst, applying the fault in force for each chunk.
// toClient is the direction from the target back to the client.
func (p *Proxy) pipe(dst, src net.Conn, toClient bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	var err error
	for {
		var n int
		n, err = src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if !p.apply(dst, src, chunk, toClient) {
				err = errFaulted
				break
			}
			if _, werr := dst.Write(chunk); werr != nil {
				err = werr
				break
			}
		}
		if err != nil {
			break
		}
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		resetAndClose(dst)
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	p.mu.Lock()
	delete(p.conns, src)
	p.mu.Unlock()
	src.Close()
}

var errFaulted = errors.New("faultproxy: fault injected")

// apply enforces the current fault on a chunk about to be written to dst;
// false means the connection was reset instead.
func (p *Proxy) apply(dst, src net.Conn, chunk []byte, toClient bool) bool {
	for {
		p.mu.Lock()
		f, changed := p.fault, p.changed
		p.mu.Unlock()
		switch {
		case f == DropResponse && toClient:
			p.count(f)
			resetAndClose(dst)
			resetAndClose(src)
			return false
		case f == ResetRequest && !toClient:
			p.count(f)
			_, _ = dst.Write(chunk[:len(chunk)/2])
			resetAndClose(dst)
			resetAndClose(src)
			return false
		case f == Stall:
			p.count(f)
			<-changed // held until the fault changes
			continue
		}
		return true
	}
}

func (p *Proxy) count(f Fault) {
	p.mu.Lock()
	p.injected[f]++
	p.mu.Unlock()
}

// resetAndClose closes with SO_LINGER 0 so the peer sees a reset, as when a
// server dies, rather than an orderly end of stream.
func resetAndClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
