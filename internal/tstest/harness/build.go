package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binaries are the module's commands, built into Dir.
type Binaries struct {
	Dir     string
	Central string // cmd/central
	Agent   string // cmd/agent
}

// BinariesIn names the binaries of a directory that holds them already
// (built by Build, or by make build into bin/).
func BinariesIn(dir string) Binaries {
	return Binaries{Dir: dir, Central: filepath.Join(dir, "central"), Agent: filepath.Join(dir, "agent")}
}

// ModuleRoot walks up from the working directory to the directory of
// go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Build builds cmd/central and cmd/agent of the module at root into dir,
// with one go build so that they share the compile work.
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./cmd/central", "./cmd/agent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return BinariesIn(dir), nil
}

// The binaries of this test binary: built by the first BuildOnce, removed by
// Main.
var once struct {
	sync.Once
	main bool // Main runs the tests
	bins Binaries
	err  error
}

// Main runs the tests of m and then removes the binaries BuildOnce built.
// A package whose tests call BuildOnce calls it from TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M) {
	once.main = true
	code := m.Run()
	if once.bins.Dir != "" {
		_ = os.RemoveAll(once.bins.Dir)
	}
	os.Exit(code)
}

// BuildOnce builds the binaries on its first call in this test binary and
// returns them on every call; it fails tb when the build failed, or when
// TestMain does not call Main (the binaries would outlive the tests).
func BuildOnce(tb testing.TB) Binaries {
	tb.Helper()
	if !once.main {
		tb.Fatal("harness: call harness.Main(m) from TestMain, which removes the binaries after the tests")
	}
	once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			once.err = err
			return
		}
		dir, err := os.MkdirTemp("", "datastorage-bin-")
		if err != nil {
			once.err = err
			return
		}
		once.bins, once.err = Build(context.Background(), root, dir)
		if once.err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if once.err != nil {
		tb.Fatalf("harness: %v", once.err)
	}
	return once.bins
}
