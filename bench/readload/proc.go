package readload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// rssEvery is how often an export's RSS is sampled.
const rssEvery = 200 * time.Millisecond

// proc is a process as /proc names it: "self" or a pid (Linux only).
type proc string

// rss is the process's resident set (VmRSS) in bytes.
func (p proc) rss() (int64, error) {
	b, err := os.ReadFile("/proc/" + string(p) + "/status")
	if err != nil {
		return 0, err
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if v, ok := bytes.CutPrefix(s.Bytes(), []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%s/status", p)
}

// clockTicks is USER_HZ, the unit of /proc/*/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpu is the CPU time (user and system) the process has used.
func (p proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + string(p) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid … utime stime: the 14th and 15th fields, the
	// 12th and 13th after the command, which may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: no command", p)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: %d fields after the command", p, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/stat: %w", p, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rssSampler samples a process's RSS every rssEvery, from its start (the
// first sample) to finish (the last).
type rssSampler struct {
	p          proc
	stop, done chan struct{}

	mu                    sync.Mutex
	first, last, max, min int64
	n                     int
	err                   error // the first failed sample's
}

// sampleRSS takes the first sample now and the next ones every rssEvery
// until finish.
func sampleRSS(p proc) *rssSampler {
	s := &rssSampler{p: p, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(rssEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.sample()
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	v, err := s.p.rss()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	if s.n == 0 {
		s.first, s.min = v, v
	}
	s.last, s.max, s.min = v, max(s.max, v), min(s.min, v)
	s.n++
}

// finish takes the last sample, stops sampling and puts the samples into
// e; the error of a failed sample.
func (s *rssSampler) finish(e *ExportRate) error {
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	e.RSSFirst, e.RSSLast, e.RSSMax, e.RSSMin, e.RSSSamples = s.first, s.last, s.max, s.min, s.n
	if s.err != nil {
		return fmt.Errorf("readload: RSS of %s: %w", s.p, s.err)
	}
	if s.n == 0 {
		return errors.New("readload: no RSS sample")
	}
	return nil
}
