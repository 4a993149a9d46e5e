package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// What every image shares, and what deploy/ and the Dockerfile must agree
// with.
const (
	Registry = "ghcr.io/kubernaut"
	// Version is the tag `make images` gives by default, and the one the
	// manifests name.
	Version = "v0.1.0"
	Source  = "https://github.com/kubernaut/datastorage"
	// BinDir holds the program; it is the image's PATH, so that
	// `kubectl exec … -- agent deadletter list` finds it.
	BinDir       = "/usr/local/bin"
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	// UID is the non-root user (and group) the images run as, numeric so
	// that Kubernetes' runAsNonRoot can check it without a passwd lookup.
	UID  = 65532
	User = "65532:65532"
)

// GoBuildFlags build every binary of an image: no paths of the building
// machine, no VCS stamp, no build ID, no symbol table. The Dockerfile passes
// the same (its test checks).
var GoBuildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// Program is one of the images.
type Program struct {
	Name        string // the binary's name and the image's suffix
	Package     string // its main package, relative to the module's root
	Description string
}

var (
	Central = Program{Name: "central", Package: "./cmd/central",
		Description: "Data Storage central: authenticates writers and persists audit records to PostgreSQL and pgvector"}
	Agent = Program{Name: "agent", Package: "./cmd/agent",
		Description: "Data Storage agent: the sidecar that makes audit records durable and forwards them to the central"}
	Programs = []Program{Central, Agent}
)

// Repository is the image's name without a tag.
func (p Program) Repository() string { return Registry + "/datastorage-" + p.Name }

// Reference is the image's name with version as its tag.
func (p Program) Reference(version string) string { return p.Repository() + ":" + version }

// Entrypoint is the binary's path in the image.
func (p Program) Entrypoint() string { return path.Join(BinDir, p.Name) }

// Platforms are the ones `make images` builds.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Options say what to build from where.
type Options struct {
	ModuleDir string // where go build runs: the module's root
	Version   string // the tag, and the version label
	Revision  string // the source commit, for the revision label
	// Created is every timestamp in the image: the commit's time, so that a
	// commit gives the same digest whenever it is built.
	Created   time.Time
	Platforms []v1.Platform
	WorkDir   string // binaries are built here
}

// Build compiles p for each platform and returns the image index of the
// images.
func Build(ctx context.Context, p Program, o Options) (v1.ImageIndex, error) {
	if len(o.Platforms) == 0 {
		return nil, fmt.Errorf("images: %s: no platforms", p.Name)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, pl := range o.Platforms {
		bin, err := buildBinary(ctx, p, pl, o)
		if err != nil {
			return nil, err
		}
		img, err := image(p, pl, bin, o)
		if err != nil {
			return nil, fmt.Errorf("images: %s %s: %w", p.Name, pl, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pl}})
	}
	return mutate.Annotations(idx, labels(p, o)).(v1.ImageIndex), nil
}

// buildBinary is `go build` of p for pl: static, reproducible.
func buildBinary(ctx context.Context, p Program, pl v1.Platform, o Options) ([]byte, error) {
	out := filepath.Join(o.WorkDir, pl.OS+"-"+pl.Architecture, p.Name)
	args := append([]string{"build"}, GoBuildFlags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", out, p.Package)...)
	cmd.Dir = o.ModuleDir
	// GOFLAGS cleared: a -race or -tags of the caller's must not change the image.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+pl.OS, "GOARCH="+pl.Architecture, "GOFLAGS=-mod=readonly")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("images: go build %s for %s: %w\n%s", p.Package, pl, err, msg)
	}
	return os.ReadFile(out)
}

// image is the one-layer image of binary on pl.
func image(p Program, pl v1.Platform, binary []byte, o Options) (v1.Image, error) {
	tarBytes, err := layerTar(p, binary, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: o.Created}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: created, CreatedBy: "make images (package images)", Comment: p.Name + " " + o.Version,
	}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = pl.OS, pl.Architecture, pl.Variant
	cfg.Created = created
	cfg.Config = v1.Config{
		Entrypoint: []string{p.Entrypoint()},
		User:       User,
		WorkingDir: "/",
		Env:        []string{"PATH=" + BinDir, "SSL_CERT_FILE=" + CABundlePath},
		Labels:     labels(p, o),
	}
	return mutate.ConfigFile(img, cfg)
}

// labels are the OCI annotations of the image and its index.
func labels(p Program, o Options) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "datastorage-" + p.Name,
		"org.opencontainers.image.description": p.Description,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
}

// passwd and group name the non-root user, for tools that look it up.
var (
	passwd = fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/:/sbin/nologin\n", UID, UID)
	group  = fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)
)

// layerTar is the image's only layer: the binary, the CA bundle, passwd and
// group naming the non-root user, and a /tmp.
func layerTar(p Program, binary []byte, created time.Time) ([]byte, error) {
	type entry struct {
		name string
		mode int64
		data []byte // nil: a directory
	}
	entries := []entry{
		{"etc/", 0o755, nil},
		{"etc/group", 0o644, []byte(group)},
		{"etc/passwd", 0o644, []byte(passwd)},
		{"etc/ssl/", 0o755, nil},
		{"etc/ssl/certs/", 0o755, nil},
		{strings.TrimPrefix(CABundlePath, "/"), 0o644, CABundle()},
		{"tmp/", 0o1777, nil},
		{"usr/", 0o755, nil},
		{"usr/local/", 0o755, nil},
		{strings.TrimPrefix(BinDir, "/") + "/", 0o755, nil},
		{strings.TrimPrefix(p.Entrypoint(), "/"), 0o755, binary},
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: created.UTC(), Format: tar.FormatPAX}
		if e.data == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CABundle is Mozilla's root CAs as PEM, from the module pinned in go.sum.
// Roots that NSS trusts only for certificates issued before a date are left
// out: a PEM bundle cannot carry that constraint, and would trust them
// without it.
func CABundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// FileName is the base name of p's layout directory and archive.
func FileName(p Program, version string) string { return "datastorage-" + p.Name + "-" + version }

// Write stores idx under dir as an OCI image layout directory (what
// `crane push DIR REF` takes) and as an OCI archive, the same directory in
// a tar (skopeo's and podman's oci-archive:), both named by FileName.
// The layout's index.json holds one descriptor, of idx, tagged version.
func Write(dir string, p Program, idx v1.ImageIndex, version string, created time.Time) (layoutDir, archive string, err error) {
	layoutDir = filepath.Join(dir, FileName(p, version))
	archive = layoutDir + ".oci.tar"
	// A layout written over an old one would add to its index.json.
	if err := os.RemoveAll(layoutDir); err != nil {
		return "", "", err
	}
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return "", "", fmt.Errorf("images: write layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": version,
	})); err != nil {
		return "", "", fmt.Errorf("images: write layout: %w", err)
	}
	if err := writeArchive(layoutDir, archive, created); err != nil {
		return "", "", fmt.Errorf("images: write archive: %w", err)
	}
	return layoutDir, archive, nil
}

// writeArchive tars dir's files, in name order with fixed times, into a
// file beside it, written under a temporary name and renamed when complete.
func writeArchive(dir, archive string, created time.Time) (err error) {
	tmp := archive + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error { // WalkDir visits in lexical order
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: created.UTC(), Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Name, h.Mode, h.Typeflag = h.Name+"/", 0o755, tar.TypeDir
			return tw.WriteHeader(h)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, archive)
}
