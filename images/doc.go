// Package images builds the OCI images of the central and the agent without
// a container daemon (`make images`; this machine and CI have none), with
// github.com/google/go-containerregistry: per program one multi-arch image
// index of static CGO_ENABLED=0 binaries, each image a single layer holding
// the binary, Mozilla's root CA bundle (golang.org/x/crypto/x509roots) and a
// passwd entry for the non-root user it runs as; no shell.
//
// The build is reproducible: the same commit gives the same digests. Every
// timestamp is the commit's time, tar headers carry no owner names or access
// times, the binaries are built with -trimpath and an empty build ID, and the
// CA bundle comes from a module pinned in go.sum rather than from the
// building machine.
//
// The names and the version here are what deploy/ references (its test
// checks): change them here, and the manifests follow. The Dockerfile at the
// repository root builds the same layout for those who use Docker (its test
// checks the paths, the user and the build flags against this package).
package images
