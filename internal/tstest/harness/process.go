package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubernaut/datastorage/internal/tstest/syncbuf"
)

const (
	// DefaultReadyWithin bounds the wait for readiness.
	DefaultReadyWithin = 60 * time.Second
	// DefaultLogLimit is how much of a process's output is kept: the start.
	DefaultLogLimit = 1 << 20
	// logTail is how much of the output a readiness failure quotes: the end.
	logTail = 4 << 10
	// pollEvery is the pause between readiness probes.
	pollEvery = 25 * time.Millisecond
)

// Command is a process to start. It may be started again after its process
// has exited (a restart on the same ports and data).
type Command struct {
	// Name names the process in errors. Zero: the base name of Path.
	Name string
	Path string
	Args []string
	// Env is added to this process's environment. Nil: this process's
	// environment alone.
	Env []string
	// Ready is a URL that answers 200 once the process is ready; Start
	// waits for it. Empty: Start does not wait.
	Ready string
	// ReadyClient polls Ready. Nil: a client with a 1 s timeout.
	ReadyClient *http.Client
	// ReadyWithin bounds the wait for Ready. Zero: DefaultReadyWithin.
	ReadyWithin time.Duration
	// LogLimit caps the captured output (stdout and stderr together; the
	// start is kept). Zero: DefaultLogLimit.
	LogLimit int
}

// Process is a started Command.
type Process struct {
	name string
	cmd  *exec.Cmd
	logs *syncbuf.Buffer
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // its exit error; set before done is closed
}

// Start starts c and, when c.Ready is set, waits until it answers 200. When
// the process does not get ready (it exits, ctx ends, or ReadyWithin
// passes) Start kills it and returns an error that quotes the end of its
// output.
func Start(ctx context.Context, c Command) (*Process, error) {
	p := &Process{name: cmp.Or(c.Name, filepath.Base(c.Path)), logs: &syncbuf.Buffer{Limit: cmp.Or(c.LogLimit, DefaultLogLimit)},
		done: make(chan struct{})}
	p.cmd = exec.Command(c.Path, c.Args...)
	if c.Env != nil {
		p.cmd.Env = append(os.Environ(), c.Env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if c.Ready == "" {
		return p, nil
	}
	if err := p.WaitReady(ctx, c.Ready, c.ReadyClient, c.ReadyWithin); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return p, nil
}

// StartTB is Start for tests: it fails tb when the process does not start
// or get ready, and kills the process when the test ends.
func StartTB(tb testing.TB, c Command) *Process {
	tb.Helper()
	p, err := Start(tb.Context(), c)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Kill() })
	return p
}

// WaitReady polls url through client (nil: a client with a 1 s timeout)
// until it answers 200. It fails when the process exits, ctx ends or within
// (zero: DefaultReadyWithin) passes, and then quotes the end of the output.
func (p *Process) WaitReady(ctx context.Context, url string, client *http.Client, within time.Duration) error {
	if client == nil {
		client = &http.Client{Timeout: time.Second}
	}
	deadline := time.Now().Add(cmp.Or(within, DefaultReadyWithin))
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready at %s: %s", p.name, url, tail(p.Logs(), logTail))
		}
		select {
		case <-time.After(pollEvery):
		case <-p.done:
		case <-ctx.Done():
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// ErrExited is returned (wrapped) by Stop and Kill when the process had
// already exited before the signal.
var ErrExited = errors.New("had already exited")

// Stop sends sig and waits up to grace for the process to exit, then kills
// it. It returns the exit error (nil for a clean exit), or an error when the
// process had already exited before sig.
func (p *Process) Stop(sig os.Signal, grace time.Duration) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			<-p.done
			return fmt.Errorf("%s %w (%v)", p.name, ErrExited, p.err)
		}
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Kill sends SIGKILL and waits for the exit. It returns an error only when
// the process had already exited before, or could not be signalled.
func (p *Process) Kill() error {
	err := p.Stop(syscall.SIGKILL, time.Minute)
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
		return nil // killed, as asked
	}
	return err
}

// StopAll stops every process at once (Stop with sig and grace) and waits
// for all of them; processes that had already exited are passed over.
func StopAll(sig os.Signal, grace time.Duration, ps ...*Process) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p != nil && !p.Exited() {
			wg.Go(func() { _ = p.Stop(sig, grace) })
		}
	}
	wg.Wait()
}

// Exited reports whether the process has exited (and been reaped).
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Name is the process's name in errors.
func (p *Process) Name() string { return p.name }

// Pid is the process's ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Logs is the output captured so far (its start, up to the log limit).
func (p *Process) Logs() string { return p.logs.String() }
