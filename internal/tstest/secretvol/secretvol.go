// Package secretvol mimics a Kubernetes Secret volume in a temporary
// directory, for tests of code that re-reads mounted files when the kubelet
// updates them. Test infrastructure only.
package secretvol

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Dir is a Secret volume: each file is a symlink to ..data/<name>, and
// ..data is a symlink to a timestamped directory that Update replaces by
// renaming a new symlink over ..data, as the kubelet does: a reader sees
// either all old files or all new ones.
type Dir struct {
	t   testing.TB
	dir string
	gen int
}

// New makes a volume holding content (file name → bytes).
func New(t testing.TB, content map[string][]byte) *Dir {
	t.Helper()
	d := &Dir{t: t, dir: t.TempDir()}
	d.Update(content)
	for name := range content {
		if err := os.Symlink(filepath.Join("..data", name), d.Path(name)); err != nil {
			t.Fatalf("secretvol: %v", err)
		}
	}
	return d
}

// Path is where a container would read the file name.
func (d *Dir) Path(name string) string { return filepath.Join(d.dir, name) }

// Update writes content into a new timestamped directory and swaps ..data.
// It names the same files as New did (a new name would have no symlink).
func (d *Dir) Update(content map[string][]byte) {
	d.t.Helper()
	d.gen++
	ts := fmt.Sprintf("..2025_01_01_00_00_%02d.%d", d.gen, d.gen)
	d.must(os.Mkdir(filepath.Join(d.dir, ts), 0o755))
	for name, b := range content {
		d.must(os.WriteFile(filepath.Join(d.dir, ts, name), b, 0o600))
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	d.must(os.Symlink(ts, tmp))
	d.must(os.Rename(tmp, filepath.Join(d.dir, "..data")))
}

func (d *Dir) must(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatalf("secretvol: %v", err)
	}
}
