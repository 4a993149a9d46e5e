package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kubernaut/datastorage/internal/tstest/harness"
)

// Workspace is where a bench or chaos run starts: the module's root, a
// temporary directory that Close removes, and the central and agent
// binaries.
type Workspace struct {
	Root, Dir string
	Bins      harness.Binaries
}

// NewWorkspace finds the module's root when root is empty, makes the
// directory (named after prog) and, unless binDir holds the binaries
// already, builds them into it, saying so on progress.
func NewWorkspace(ctx context.Context, prog, root, binDir string, progress io.Writer) (*Workspace, error) {
	if root == "" {
		var err error
		if root, err = harness.ModuleRoot(); err != nil {
			return nil, fmt.Errorf("%w: set RepoRoot", err)
		}
	}
	dir, err := os.MkdirTemp("", "datastorage-"+prog+"-")
	if err != nil {
		return nil, err
	}
	w := &Workspace{Root: root, Dir: dir, Bins: harness.BinariesIn(binDir)}
	if binDir == "" {
		fmt.Fprintf(progress, "%s: building cmd/central and cmd/agent\n", prog)
		if w.Bins, err = harness.Build(ctx, root, filepath.Join(dir, "bin")); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Close removes the directory.
func (w *Workspace) Close() { _ = os.RemoveAll(w.Dir) }
