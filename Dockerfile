# The images `make images` builds (package images), for those who build with Docker or BuildKit:
#   docker buildx build --platform linux/amd64,linux/arm64 --target central \
#     --build-arg VERSION=v0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     -t ghcr.io/kubernaut/datastorage-central:v0.1.0 .
#   (--target agent -t ghcr.io/kubernaut/datastorage-agent:v0.1.0 for the agent)
# Same layout: a static binary in /usr/local/bin (the PATH), Mozilla's root CAs from the module pinned in
# go.sum, passwd/group naming user 65532, no shell. images/dockerfile_test.go keeps the two in step.
# `make images` needs no daemon and is reproducible; this file is the familiar path, not the reference.

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o /out/usr/local/bin/central ./cmd/central
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o /out/usr/local/bin/agent ./cmd/agent
RUN mkdir -p /out/etc/ssl/certs /out/tmp && chmod 1777 /out/tmp \
 && go run ./images/cmd/images ca-bundle > /out/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /out/etc/group

FROM scratch AS base
ARG VERSION=v0.1.0 REVISION=unknown
COPY --from=build /out/etc /etc
COPY --from=build /out/tmp /tmp
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /
LABEL org.opencontainers.image.version=$VERSION \
      org.opencontainers.image.revision=$REVISION \
      org.opencontainers.image.source=https://github.com/kubernaut/datastorage

FROM base AS agent
COPY --from=build /out/usr/local/bin/agent /usr/local/bin/agent
LABEL org.opencontainers.image.title=datastorage-agent
ENTRYPOINT ["/usr/local/bin/agent"]

FROM base AS central
COPY --from=build /out/usr/local/bin/central /usr/local/bin/central
LABEL org.opencontainers.image.title=datastorage-central
ENTRYPOINT ["/usr/local/bin/central"]
