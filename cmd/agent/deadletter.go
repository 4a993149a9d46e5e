package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/agent"
	"github.com/kubernaut/datastorage/agent/queue"
	"github.com/kubernaut/datastorage/internal/cli"
	"github.com/kubernaut/datastorage/wire"
)

// deadLetterUsage is the command's synopsis, for a missing or unknown verb.
const deadLetterUsage = `usage: agent deadletter list [--limit N] [--json]
       agent deadletter delete --through SEQ
       agent deadletter replay --through SEQ
Each talks to the running agent at --listen (loopback only), e.g.
  kubectl exec POD -c datastorage-agent -- agent deadletter list`

// deadLetter runs "agent deadletter VERB": the dead-letter endpoints of the
// running agent, for an operator inside the pod. It prints what the agent
// answered and fails on anything but 200.
func (m *Main) deadLetter(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(deadLetterUsage)
	}
	verb, args := args[0], args[1:]
	fs := cli.NewFlagSet("agent deadletter "+verb, m.Stderr)
	var (
		listen  string
		limit   int
		asJSON  bool
		through string
	)
	// The same flag and variable as the agent's own --listen: inside the pod
	// the command finds the agent where the agent was told to listen.
	fs.StringVar(&listen, "listen", "AGENT_LISTEN", agent.DefaultListen, "address of the running agent's API")
	switch verb {
	case "list":
		fs.IntVar(&limit, "limit", "", 1000, "dead letters shown at most, oldest first")
		fs.BoolVar(&asJSON, "json", "", false, "print the agent's JSON answer, records included (save it before a delete)")
	case "delete", "replay":
		fs.StringVar(&through, "through", "", "", "the last seq acted on (as list shows it): every dead letter up to and including it (required)")
	default:
		return fmt.Errorf("unknown verb %q\n%s", verb, deadLetterUsage)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, err := agentBaseURL(listen)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	if verb == "list" {
		if limit < 1 {
			return errors.New("--limit must be at least 1")
		}
		body, err := callAgent(ctx, http.MethodGet, base+"/api/v1/deadletter?limit="+strconv.Itoa(limit))
		if err != nil {
			return err
		}
		if asJSON {
			_, err := m.Stdout.Write(body)
			return err
		}
		var list agent.DeadLetterList
		if err := json.Unmarshal(body, &list); err != nil {
			return fmt.Errorf("the agent's answer: %w", err)
		}
		return printDeadLetters(m.Stdout, list)
	}

	if _, err := strconv.ParseUint(through, 10, 64); err != nil {
		return fmt.Errorf("--through %q: want the seq of a dead letter, as `agent deadletter list` shows it", through)
	}
	method, path := http.MethodDelete, "/api/v1/deadletter"
	if verb == "replay" {
		method, path = http.MethodPost, "/api/v1/deadletter/replay"
	}
	body, err := callAgent(ctx, method, base+path+"?through="+through)
	if err != nil {
		return err
	}
	if verb == "replay" {
		var r queue.Replay
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("the agent's answer: %w", err)
		}
		_, err = fmt.Fprintf(m.Stdout, "replayed %d, skipped %d (skipped ones stay: see their reason in list)\n", r.Replayed, r.Skipped)
		return err
	}
	var d agent.DeadLetterDeletion
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("the agent's answer: %w", err)
	}
	_, err = fmt.Fprintf(m.Stdout, "deleted %d\n", d.Deleted)
	return err
}

// agentBaseURL is the URL of the agent listening at listen; an address with
// no host (":18080") is reached on loopback, the only peer the dead-letter
// endpoints answer.
func agentBaseURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}).String(), nil
}

// callAgent sends one request and returns the body of a 200; any other
// status is an error carrying the agent's error body.
func callAgent(ctx context.Context, method, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is the agent running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read the agent's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e wire.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("the agent answered %d %s: %s", resp.StatusCode, e.Error, e.Message)
		}
		return nil, fmt.Errorf("the agent answered %s", resp.Status)
	}
	return body, nil
}

// printDeadLetters writes one line per dead letter, and a count when more
// are held than shown.
func printDeadLetters(w io.Writer, list agent.DeadLetterList) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tKIND\tID\tRECEIVED\tDEAD SINCE\tREASON")
	for _, d := range list.DeadLetters {
		kind, id, received := string(d.Kind), d.ID, ""
		if kind == "" {
			kind = "-"
		}
		if id == "" {
			id = "-" // a corrupt entry: only its raw bytes are kept
		}
		if !d.ReceivedAt.IsZero() {
			received = d.ReceivedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", uint64(d.Key), kind, id, received, d.At.UTC().Format(time.RFC3339), d.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d shown of %d held\n", len(list.DeadLetters), list.Count)
	return err
}
