package tstest_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kubernaut/datastorage"

// shipped are the packages whose non-test code ships: the binaries' and
// the client library's.
var shipped = []string{"cmd/...", "agent/...", "central/...", "storage/...", "wire/...", "client/...", "export/..."}

func TestShippedPackages_ImportNoTestInfrastructure(t *testing.T) {
	args := []string{"list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`}
	for _, p := range shipped {
		args = append(args, module+"/"+p)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	listed := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		listed++
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module+"/internal/tstest") {
				t.Errorf("%s imports %s: test infrastructure must stay out of what ships", f[0], imp)
			}
		}
	}
	if listed < 20 {
		t.Fatalf("go list named only %d packages: the patterns are wrong\n%s", listed, out)
	}
}
