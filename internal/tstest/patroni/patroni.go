package patroni

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
)

// Defaults for Config's zero values: a leader key that expires 10 s after
// its holder died, a Patroni loop every second, and DCS/PostgreSQL
// operations retried for 4 s (loop_wait + 2×retry_timeout stays within ttl,
// as Patroni requires).
const (
	DefaultTTL          = 10
	DefaultLoopWait     = 1
	DefaultRetryTimeout = 4
	DefaultBinDir       = "/usr/lib/postgresql/15/bin"
	// Superuser is the superuser every node trusts from 127.0.0.1.
	Superuser = "postgres"
)

// Config configures Start. Every zero value has a default.
type Config struct {
	// Root is the module's root: Provision runs scripts/provision-ha.sh from
	// it. Empty: found by walking up from the working directory to go.mod.
	Root string
	// TempDir is where the cluster's directory is made. Empty: os.TempDir().
	TempDir string
	// Nodes is the number of PostgreSQL nodes. Zero: 2.
	Nodes int
	// TTL, LoopWait and RetryTimeout are Patroni's settings of those names,
	// in seconds. Zero: DefaultTTL, DefaultLoopWait, DefaultRetryTimeout.
	TTL, LoopWait, RetryTimeout int
	// BinDir holds PostgreSQL's binaries. Empty: DefaultBinDir.
	BinDir string
	// StartTimeout bounds Start, from etcd to a healthy cluster. Zero: 2m.
	StartTimeout time.Duration
}

func (c Config) withDefaults() Config {
	c.Nodes = cmp.Or(c.Nodes, 2)
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.LoopWait = cmp.Or(c.LoopWait, DefaultLoopWait)
	c.RetryTimeout = cmp.Or(c.RetryTimeout, DefaultRetryTimeout)
	c.BinDir = cmp.Or(c.BinDir, DefaultBinDir)
	c.StartTimeout = cmp.Or(c.StartTimeout, 2*time.Minute)
	return c
}

// Node is one PostgreSQL node and its Patroni.
type Node struct {
	Name    string
	PGAddr  string // host:port of its PostgreSQL
	APIAddr string // host:port of its Patroni REST API
	dir     string // its directory: config, log, data/
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool // by Kill or StopNode, until StartNode
}

// DataDir is the node's PostgreSQL data directory.
func (n *Node) DataDir() string { return filepath.Join(n.dir, "data") }

// LogFile is where the node's Patroni and PostgreSQL write their log.
func (n *Node) LogFile() string { return filepath.Join(n.dir, "patroni.log") }

// Cluster is a running etcd and its Patroni nodes.
type Cluster struct {
	Nodes []*Node
	Dir   string

	cfg      Config
	etcd     *exec.Cmd
	etcdDone chan struct{}
	etcdAddr string
	cred     *syscall.Credential // nil: run as ourselves
	http     *http.Client
	mu       sync.Mutex
	closed   bool
}

// Provision installs PostgreSQL, pgvector, Patroni and etcd when missing
// (scripts/provision-ha.sh under root).
func Provision(ctx context.Context, root string) error {
	if root == "" {
		var err error
		if root, err = harness.ModuleRoot(); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "provision-ha.sh"))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("patroni: scripts/provision-ha.sh: %w\n%s", err, out)
	}
	return nil
}

// Start provisions what is missing, starts etcd and the nodes, and waits
// until one node leads and every other one is its synchronous standby. On
// error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if err := Provision(ctx, cfg.Root); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	dir, err := os.MkdirTemp(cfg.TempDir, "datastorage-ha-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, cfg: cfg, http: &http.Client{Timeout: 2 * time.Second}}
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("patroni: PostgreSQL refuses to run as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := c.own(c.Dir, 0o700); err != nil {
		return err
	}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	for i := range c.cfg.Nodes {
		n, err := c.newNode(i)
		if err != nil {
			return err
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := c.StartNode(n); err != nil {
			return err
		}
	}
	return c.WaitHealthy(ctx)
}

// own hands path to the user the cluster runs as.
func (c *Cluster) own(path string, mode os.FileMode) error {
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := freeport.Free()
	if err != nil {
		return err
	}
	peer, err := freeport.Free()
	if err != nil {
		return err
	}
	data := filepath.Join(c.Dir, "etcd")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	if err := c.own(data, 0o700); err != nil {
		return err
	}
	c.etcdAddr = client
	cmd, done, err := c.spawn(filepath.Join(c.Dir, "etcd.log"), "etcd", "--name", "etcd0", "--data-dir", data,
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "etcd0=http://"+peer, "--initial-cluster-state", "new",
		"--initial-cluster-token", filepath.Base(c.Dir))
	if err != nil {
		return fmt.Errorf("patroni: start etcd: %w", err)
	}
	c.etcd, c.etcdDone = cmd, done
	for {
		resp, err := c.http.Get("http://" + client + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("patroni: etcd exited: %s", tail(filepath.Join(c.Dir, "etcd.log")))
		case <-ctx.Done():
			return fmt.Errorf("patroni: etcd not healthy: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// spawn starts name in a process group of its own, as the cluster's user,
// logging to logPath; done is closed when it exits.
func (c *Cluster) spawn(logPath, name string, args ...string) (*exec.Cmd, chan struct{}, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer log.Close()
	cmd := exec.Command(name, args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.Dir, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return cmd, done, nil
}

func (c *Cluster) newNode(i int) (*Node, error) {
	pg, err := freeport.Free()
	if err != nil {
		return nil, err
	}
	api, err := freeport.Free()
	if err != nil {
		return nil, err
	}
	n := &Node{Name: "node" + strconv.Itoa(i), PGAddr: pg, APIAddr: api, dir: filepath.Join(c.Dir, "node"+strconv.Itoa(i))}
	if err := os.Mkdir(n.dir, 0o700); err != nil {
		return nil, err
	}
	if err := c.own(n.dir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(n.dir, "patroni.yml")
	if err := os.WriteFile(conf, []byte(c.nodeConfig(n)), 0o600); err != nil {
		return nil, err
	}
	return n, c.own(conf, 0o600)
}

// nodeConfig is a node's patroni.yml. JSON is YAML, so it is written as JSON.
func (c *Cluster) nodeConfig(n *Node) string {
	host := func(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
	trust := []string{"local all all trust", "host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"}
	cfg := map[string]any{
		"scope": "datastorage-" + filepath.Base(c.Dir),
		"name":  n.Name,
		"log":   map[string]any{"level": "INFO"},
		"restapi": map[string]any{
			"listen": n.APIAddr, "connect_address": n.APIAddr,
		},
		"etcd3": map[string]any{"hosts": []string{c.etcdAddr}},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl": c.cfg.TTL, "loop_wait": c.cfg.LoopWait, "retry_timeout": c.cfg.RetryTimeout,
				"maximum_lag_on_failover": 1 << 20,
				// A commit is acknowledged once the synchronous standby has
				// it, and never without one (strict): the standby, the only
				// node that may be promoted, holds every acknowledged commit.
				"synchronous_mode": true, "synchronous_mode_strict": true,
				"postgresql": map[string]any{
					"use_pg_rewind": true, "use_slots": true,
					"parameters": map[string]any{
						"wal_log_hints": "on", "max_connections": 200, "max_wal_senders": 10,
						"max_replication_slots": 10, "wal_keep_size": "256MB", "shared_buffers": "128MB",
						"hot_standby": "on",
					},
				},
			},
			"initdb": []any{map[string]string{"encoding": "UTF8"}, map[string]string{"locale": "C.UTF-8"}, "data-checksums"},
		},
		"postgresql": map[string]any{
			"listen": n.PGAddr, "connect_address": n.PGAddr,
			"data_dir": n.DataDir(), "bin_dir": c.cfg.BinDir,
			"pgpass": filepath.Join(n.dir, "pgpass"),
			"authentication": map[string]any{
				"superuser":   map[string]string{"username": Superuser, "password": "postgres"},
				"replication": map[string]string{"username": Superuser, "password": "postgres"},
				"rewind":      map[string]string{"username": Superuser, "password": "postgres"},
			},
			"parameters": map[string]any{
				"unix_socket_directories": n.dir, "listen_addresses": host(n.PGAddr),
				"logging_collector": "off",
			},
			"pg_hba": trust,
		},
		"tags": map[string]any{"nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return string(b) + "\n"
}

// StartNode starts the node's Patroni (again, after Kill or StopNode): a
// node that was the primary rejoins as a standby, rewound if it must be.
func (c *Cluster) StartNode(n *Node) error {
	cmd, done, err := c.spawn(n.LogFile(), "patroni", filepath.Join(n.dir, "patroni.yml"))
	if err != nil {
		return fmt.Errorf("patroni: start %s: %w", n.Name, err)
	}
	n.cmd, n.exited, n.stopped = cmd, done, false
	return nil
}

// Kill kills the node as a machine dying would: Patroni and its postmaster
// with every backend, SIGKILL, at once. Its leader key, if it held it,
// expires after TTL and the synchronous standby is promoted.
func (c *Cluster) Kill(n *Node) error {
	n.stopped = true
	pm := postmasterPID(n.DataDir())
	if n.cmd != nil && n.cmd.Process != nil {
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	}
	if pm > 0 {
		// Patroni starts the postmaster in a session (and group) of its own.
		_ = syscall.Kill(-pm, syscall.SIGKILL)
		_ = syscall.Kill(pm, syscall.SIGKILL)
	}
	if n.exited != nil {
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("patroni: %s's Patroni survived SIGKILL", n.Name)
		}
	}
	for range 100 {
		if pm <= 0 || syscall.Kill(pm, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("patroni: %s's postmaster %d survived SIGKILL", n.Name, pm)
}

// StopNode stops the node cleanly (Patroni stops PostgreSQL, fast) within
// timeout, then kills what is left.
func (c *Cluster) StopNode(n *Node, timeout time.Duration) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.stopped = true
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(timeout):
		}
	}
	_ = c.Kill(n)
}

// postmasterPID is the first line of dir/postmaster.pid (0: none).
func postmasterPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// Close stops every node and etcd and removes the cluster's directory. It
// is idempotent.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() { c.StopNode(n, 20*time.Second) })
	}
	wg.Wait()
	if c.etcd != nil && c.etcd.Process != nil {
		_ = c.etcd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.etcdDone:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-c.etcd.Process.Pid, syscall.SIGKILL)
			<-c.etcdDone
		}
	}
	_ = os.RemoveAll(c.Dir)
}

// URL is the multi-host URL of database db on every node: a client
// connects to whichever node accepts writes.
func (c *Cluster) URL(db string) string {
	hosts := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		hosts[i] = n.PGAddr
	}
	return "postgres://" + Superuser + "@" + strings.Join(hosts, ",") + "/" + db +
		"?sslmode=disable&target_session_attrs=read-write"
}

// NodeURL is the URL of database db on node n alone.
func (c *Cluster) NodeURL(n *Node, db string) string {
	return "postgres://" + Superuser + "@" + n.PGAddr + "/" + db + "?sslmode=disable"
}

// Member is a node as Patroni's GET /cluster describes it.
type Member struct {
	Name     string `json:"name"`
	Role     string `json:"role"`  // leader, sync_standby, replica
	State    string `json:"state"` // running, streaming, starting, stopped, …
	Timeline int    `json:"timeline"`
}

// Members asks the nodes' REST APIs, in turn, for the cluster's members.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	var lastErr error
	for _, n := range c.Nodes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.APIAddr+"/cluster", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		var body struct {
			Members []Member `json:"members"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return body.Members, nil
	}
	return nil, fmt.Errorf("patroni: no REST API answered: %w", lastErr)
}

// ErrNoPrimary is Primary's error while no node leads.
var ErrNoPrimary = errors.New("patroni: no running primary")

// Primary is the node that leads and runs, as Patroni's REST API says.
func (c *Cluster) Primary(ctx context.Context) (*Node, error) {
	ms, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Role == "leader" && m.State == "running" {
			return c.node(m.Name), nil
		}
	}
	return nil, ErrNoPrimary
}

func (c *Cluster) node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Healthy reports whether one node leads and runs and every other one is
// its synchronous standby, replicating.
func (c *Cluster) Healthy(ctx context.Context) (bool, string) {
	ms, err := c.Members(ctx)
	if err != nil {
		return false, err.Error()
	}
	leaders, syncs := 0, 0
	var states []string
	for _, m := range ms {
		states = append(states, m.Name+"="+m.Role+"/"+m.State)
		switch {
		case m.Role == "leader" && m.State == "running":
			leaders++
		case m.Role == "sync_standby" && (m.State == "running" || m.State == "streaming"):
			syncs++
		}
	}
	return leaders == 1 && syncs == len(c.Nodes)-1, strings.Join(states, " ")
}

// WaitHealthy waits until Healthy, or ctx is done.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	for {
		ok, states := c.Healthy(ctx)
		if ok {
			return nil
		}
		for _, n := range c.Nodes {
			select {
			case <-n.exited:
				if !n.stopped {
					return fmt.Errorf("patroni: %s exited: %s", n.Name, tail(n.LogFile()))
				}
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("patroni: cluster not healthy (%s): %w", states, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tail is the last lines of a log file, for errors.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
