package images_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/images"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	op, args string
}

// dockerfile reads the repository's Dockerfile into its stages, by name.
func dockerfile(t *testing.T) map[string][]instruction {
	t.Helper()
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	stages := map[string][]instruction{}
	stage, pending := "", ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if pending == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		op, args, _ := strings.Cut(line, " ")
		if op == "FROM" {
			m := regexp.MustCompile(`(?i)\sAS\s+(\S+)$`).FindStringSubmatch(args)
			require.NotNil(t, m, "every stage is named: %s", line)
			stage = m[1]
		}
		stages[stage] = append(stages[stage], instruction{op, strings.TrimSpace(args)})
	}
	return stages
}

func args(stage []instruction, op string) []string {
	var out []string
	for _, in := range stage {
		if in.op == op {
			out = append(out, in.args)
		}
	}
	return out
}

// The Dockerfile builds what `make images` builds: the same paths, user,
// environment, build flags, CA bundle, passwd and labels, one target per
// program.
func TestDockerfile_BuildsTheSameLayoutAsMakeImages(t *testing.T) {
	stages := dockerfile(t)
	build, base := stages["build"], stages["base"]
	require.NotEmpty(t, build)
	require.NotEmpty(t, base)

	goMod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	require.NotNil(t, goVersion)
	assert.Contains(t, args(build, "FROM")[0], "golang:"+string(goVersion[1])+"-", "the builder's Go is go.mod's")

	runs := strings.Join(args(build, "RUN"), "\n")
	for _, p := range images.Programs {
		goBuild := regexp.MustCompile(`go build (.*) -o /out` + regexp.QuoteMeta(p.Entrypoint()) + ` ` + regexp.QuoteMeta(p.Package) + `\n`).
			FindStringSubmatch(runs + "\n")
		require.NotNil(t, goBuild, "%s: go build … -o /out%s %s", p.Name, p.Entrypoint(), p.Package)
		flags := strings.ReplaceAll(goBuild[1], `"`, "")
		assert.Equal(t, strings.Join(images.GoBuildFlags, " "), flags, "%s: the flags of images.GoBuildFlags", p.Name)

		stage := stages[p.Name]
		require.NotEmpty(t, stage, "a target per program: --target %s", p.Name)
		assert.Equal(t, "base AS "+p.Name, args(stage, "FROM")[0])
		assert.Equal(t, []string{"--from=build /out" + p.Entrypoint() + " " + p.Entrypoint()}, args(stage, "COPY"))
		assert.Equal(t, []string{`["` + p.Entrypoint() + `"]`}, args(stage, "ENTRYPOINT"))
		assert.Equal(t, []string{"org.opencontainers.image.title=datastorage-" + p.Name}, args(stage, "LABEL"))
	}
	assert.Contains(t, args(build, "ENV"), "CGO_ENABLED=0 GOFLAGS=-mod=readonly", "static binaries, as images.Build builds them")
	assert.Contains(t, runs, "go run ./images/cmd/images ca-bundle > /out"+images.CABundlePath, "the same CA bundle")
	assert.Contains(t, runs, "printf '"+strings.ReplaceAll(images.Passwd, "\n", `\n`)+"' > /out/etc/passwd")
	assert.Contains(t, runs, "printf '"+strings.ReplaceAll(images.Group, "\n", `\n`)+"' > /out/etc/group")
	assert.Contains(t, runs, "chmod 1777 /out/tmp")

	assert.Equal(t, []string{images.User}, args(base, "USER"))
	assert.Equal(t, []string{"PATH=" + images.BinDir + " SSL_CERT_FILE=" + images.CABundlePath}, args(base, "ENV"))
	assert.Equal(t, []string{"/"}, args(base, "WORKDIR"))
	assert.Equal(t, []string{"VERSION=" + images.Version + " REVISION=unknown"}, args(base, "ARG"))
	labels := strings.Join(args(base, "LABEL"), " ")
	for _, want := range []string{"org.opencontainers.image.version=$VERSION", "org.opencontainers.image.revision=$REVISION",
		"org.opencontainers.image.source=" + images.Source} {
		assert.Contains(t, labels, want)
	}
}
