package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/images"
	"github.com/kubernaut/datastorage/internal/tstest/freeport"
	"github.com/kubernaut/datastorage/internal/tstest/harness"
	"github.com/kubernaut/datastorage/internal/tstest/pgtest"
)

// options build for this machine's platform only (make images adds
// arm64), from a fixed commit.
func options(t *testing.T) images.Options {
	t.Helper()
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	require.Equal(t, "linux", runtime.GOOS, "the images are Linux images: run their test on Linux")
	return images.Options{
		ModuleDir: root, Version: "v9.8.7", Revision: "0123456789abcdef0123456789abcdef01234567",
		Created:   time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		Platforms: []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}},
		WorkDir:   t.TempDir(),
	}
}

// build builds p and writes it under a new directory, returning the
// archive's path and the index's digest.
func build(t *testing.T, p images.Program, o images.Options) (archive string, digest v1.Hash) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	idx, err := images.Build(ctx, p, o)
	require.NoError(t, err)
	_, archive, err = images.Write(t.TempDir(), p, idx, o.Version, o.Created)
	require.NoError(t, err)
	digest, err = idx.Digest()
	require.NoError(t, err)
	return archive, digest
}

// openArchive unpacks an OCI archive as a registry client would receive
// it and returns the image of platform, checking the index on the way.
func openArchive(t *testing.T, archive string, o images.Options) v1.Image {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			require.NoError(t, os.MkdirAll(target, 0o755))
			continue
		}
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(target, data, 0o644))
	}
	top, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err, "an OCI image layout")
	topManifest, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, topManifest.Manifests, 1)
	desc := topManifest.Manifests[0]
	assert.Equal(t, types.OCIImageIndex, desc.MediaType, "one multi-arch index")
	assert.Equal(t, o.Version, desc.Annotations["org.opencontainers.image.ref.name"])

	idx, err := top.ImageIndex(desc.Digest)
	require.NoError(t, err)
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, o.Revision, m.Annotations["org.opencontainers.image.revision"])
	require.Len(t, m.Manifests, len(o.Platforms))
	require.NotNil(t, m.Manifests[0].Platform)
	assert.Equal(t, o.Platforms[0].Architecture, m.Manifests[0].Platform.Architecture)
	img, err := idx.Image(m.Manifests[0].Digest)
	require.NoError(t, err)
	mt, err := img.MediaType()
	require.NoError(t, err)
	assert.Equal(t, types.OCIManifestSchema1, mt)
	return img
}

// files are the regular files of img's filesystem, by absolute path, with
// their tar headers.
func files(t *testing.T, img v1.Image) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	data, headers := map[string][]byte{}, map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		name := "/" + strings.TrimSuffix(h.Name, "/")
		headers[name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			data[name] = b
		}
	}
	return data, headers
}

// The central's image, opened from its archive: its configuration is what
// Kubernetes needs (entrypoint, non-root numeric user, labels), its layer
// holds a static binary that starts, serves against the test PostgreSQL
// and stores a record, and building the same commit again gives the same
// digest and the same archive, byte for byte.
func TestCentralImage_RunsAndIsReproducible(t *testing.T) {
	o := options(t)
	archive, digest := build(t, images.Central, o)
	img := openArchive(t, archive, o)

	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/usr/local/bin/central"}, cfg.Config.Entrypoint)
	assert.Empty(t, cfg.Config.Cmd)
	assert.Equal(t, "65532:65532", cfg.Config.User)
	assert.Contains(t, cfg.Config.Env, "PATH=/usr/local/bin")
	assert.Contains(t, cfg.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	assert.Equal(t, "linux", cfg.OS)
	assert.Equal(t, runtime.GOARCH, cfg.Architecture)
	assert.True(t, cfg.Created.Equal(o.Created), "created %s", cfg.Created)
	assert.Equal(t, map[string]string{
		"org.opencontainers.image.title":       "datastorage-central",
		"org.opencontainers.image.description": images.Central.Description,
		"org.opencontainers.image.version":     "v9.8.7",
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      "https://github.com/kubernaut/datastorage",
		"org.opencontainers.image.created":     "2026-11-30T12:00:00Z",
	}, cfg.Config.Labels)

	data, headers := files(t, img)
	for name, h := range headers {
		assert.True(t, h.ModTime.Equal(o.Created), "%s: mtime %s", name, h.ModTime)
		assert.Zero(t, h.Uid, name)
		assert.Empty(t, h.Uname, name)
	}
	for _, shell := range []string{"/bin/sh", "/bin/bash", "/usr/bin/sh"} {
		assert.NotContains(t, headers, shell, "no shell")
	}
	bin := data["/usr/local/bin/central"]
	require.NotEmpty(t, bin)
	assert.EqualValues(t, 0o755, headers["/usr/local/bin/central"].Mode)
	assert.EqualValues(t, 0o1777, headers["/tmp"].Mode)
	roots := 0
	for rest := data["/etc/ssl/certs/ca-certificates.crt"]; ; roots++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		_, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
	}
	assert.Greater(t, roots, 100, "Mozilla's roots")
	assert.Contains(t, string(data["/etc/passwd"]), "nonroot:x:65532:65532:")

	// The binary from the layer: static (it runs here with no loader of
	// the image's), then for real.
	exe := filepath.Join(t.TempDir(), "central")
	require.NoError(t, os.WriteFile(exe, bin, 0o755))
	help, _ := exec.Command(exe, "--help").CombinedOutput()
	assert.Contains(t, string(help), "-database-url")
	startCentral(t, exe)

	// The same commit again, from scratch: the same digest, the same bytes.
	o.WorkDir = t.TempDir()
	again, digestAgain := build(t, images.Central, o)
	assert.Equal(t, digest, digestAgain, "reproducible")
	first, err := os.ReadFile(archive)
	require.NoError(t, err)
	second, err := os.ReadFile(again)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(first, second), "the archives differ")

	// Another commit is another image.
	o.Revision = strings.Repeat("f", 40)
	_, digestOther := build(t, images.Central, o)
	assert.NotEqual(t, digest, digestOther)
}

// startCentral runs exe as the central against a new test database and
// stores one record through it.
func startCentral(t *testing.T, exe string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	require.NoError(t, os.WriteFile(tokens,
		[]byte(`tok-gw,system:serviceaccount:kubernaut-system:gateway-sa,uid-1,"system:serviceaccounts"`+"\n"), 0o600))
	api, metrics := freeport.Addr(t), freeport.Addr(t)
	p := harness.StartTB(t, harness.Command{
		Path:  exe,
		Args:  []string{"--database-url", dsn, "--auth", "static", "--token-file", tokens, "--listen", api, "--metrics-listen", metrics},
		Ready: "http://" + api + "/readyz",
	})
	t.Cleanup(func() { _ = p.Stop(syscall.SIGTERM, 30*time.Second) })
	req, err := http.NewRequest(http.MethodPost, "http://"+api+"/api/v1/audit/remediation",
		strings.NewReader(`{"remediationRequestID":"rr-image"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tok-gw")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s\n%s", body, p.Logs())
}

// The agent's image: its entrypoint is on PATH under its own name, so that
// `kubectl exec … -- agent deadletter list` finds it, and the binary runs.
func TestAgentImage_EntrypointIsOnPathAndRuns(t *testing.T) {
	o := options(t)
	archive, _ := build(t, images.Agent, o)
	img := openArchive(t, archive, o)
	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/usr/local/bin/agent"}, cfg.Config.Entrypoint)
	assert.Equal(t, images.User, cfg.Config.User)
	assert.Equal(t, "datastorage-agent", cfg.Config.Labels["org.opencontainers.image.title"])
	data, _ := files(t, img)
	exe := filepath.Join(t.TempDir(), "agent")
	require.NoError(t, os.WriteFile(exe, data["/usr/local/bin/agent"], 0o755))
	help, _ := exec.Command(exe, "--help").CombinedOutput()
	assert.Contains(t, string(help), "-central-url")
	out, err := exec.Command(exe, "deadletter", "list", "--listen", freeport.Addr(t)).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "is the agent running?")
}
