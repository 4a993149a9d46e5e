// Command images builds the OCI images of the central and the agent (make
// images): per program a multi-arch image index, written under --out as an
// OCI layout directory and an OCI archive. "images ca-bundle" prints the CA
// bundle the images carry, for the Dockerfile.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubernaut/datastorage/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "ca-bundle" {
		_, err := os.Stdout.Write(images.CABundle())
		return err
	}
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	out := fs.String("out", "dist/images", "directory of the layouts and archives (git-ignored)")
	version := fs.String("version", images.Version, "the images' tag and version label")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated OS/ARCH to build for")
	programs := fs.String("programs", "central,agent", "comma-separated programs to build")
	if err := fs.Parse(args); err != nil {
		return err
	}
	moduleDir, err := goModuleDir(ctx)
	if err != nil {
		return err
	}
	revision, created, err := source(ctx, moduleDir)
	if err != nil {
		return err
	}
	o := images.Options{ModuleDir: moduleDir, Version: *version, Revision: revision, Created: created}
	for _, s := range strings.Split(*platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil || p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("--platforms %q: want OS/ARCH, e.g. linux/arm64", s)
		}
		o.Platforms = append(o.Platforms, *p)
	}
	if o.WorkDir, err = os.MkdirTemp("", "datastorage-images-"); err != nil {
		return err
	}
	defer os.RemoveAll(o.WorkDir)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, name := range strings.Split(*programs, ",") {
		i := slices.IndexFunc(images.Programs, func(p images.Program) bool { return p.Name == strings.TrimSpace(name) })
		if i < 0 {
			return fmt.Errorf("--programs: unknown program %q (central or agent)", name)
		}
		p := images.Programs[i]
		idx, err := images.Build(ctx, p, o)
		if err != nil {
			return err
		}
		dir, archive, err := images.Write(*out, p, idx, o.Version, o.Created)
		if err != nil {
			return err
		}
		digest, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s@%s\n  %s/ (crane push %s %s)\n  %s\n", p.Reference(o.Version), digest, dir, dir, p.Reference(o.Version), archive)
	}
	fmt.Printf("revision %s, created %s\n", revision, created.Format(time.RFC3339))
	return nil
}

func goModuleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from within the module (the repository's root)")
	}
	return filepath.Dir(gomod), nil
}

// source is the commit the images are built from and its time, from git:
// the same commit gives the same images. A tree with uncommitted changes
// gets revision "<commit>-dirty". Outside git, SOURCE_DATE_EPOCH and
// SOURCE_REVISION say them.
func source(ctx context.Context, dir string) (revision string, created time.Time, err error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		secs, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not seconds since 1970", epoch)
		}
		created = time.Unix(secs, 0).UTC()
	}
	revision = os.Getenv("SOURCE_REVISION")
	if revision != "" && !created.IsZero() {
		return revision, created, nil
	}
	head, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", time.Time{}, errors.New("not a git checkout: set SOURCE_REVISION and SOURCE_DATE_EPOCH")
	}
	if revision == "" {
		revision = head
		if _, err := git("diff", "--quiet", "HEAD", "--"); err != nil {
			revision += "-dirty"
		}
	}
	if created.IsZero() {
		ct, err := git("log", "-1", "--format=%ct", head)
		if err != nil {
			return "", time.Time{}, err
		}
		secs, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("git log: commit time %q", ct)
		}
		created = time.Unix(secs, 0).UTC()
	}
	return revision, created, nil
}
