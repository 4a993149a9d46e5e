#!/usr/bin/env bash
# make test: provision PostgreSQL 15 + pgvector, Patroni and etcd when missing,
# start a throwaway cluster in a temporary directory on a free port, run vet
# and the race-enabled test suite against it, and remove the cluster afterwards.
# With TEST_DATABASE_URL already set, that cluster is used instead. The
# failover test (storage/failover_test.go) starts its own Patroni cluster
# (internal/tstest/patroni), so Patroni and etcd are provisioned either way.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision-ha.sh
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  port=${TEST_PG_PORT:-}
  if [ -z "$port" ]; then
    for p in $(seq 55500 55600); do
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
  fi
  dir=$(mktemp -d /tmp/datastorage-test-pg.XXXXXX)
  cleanup() { bash scripts/pg-cluster.sh stop "$dir" || true; rm -rf "$dir"; }
  trap cleanup EXIT
  bash scripts/pg-cluster.sh start "$dir" "$port"
  TEST_DATABASE_URL=$(bash scripts/pg-cluster.sh url "$port")
  export TEST_DATABASE_URL
  echo "test: throwaway PostgreSQL at 127.0.0.1:$port ($dir)"
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 15m ${GOTEST_FLAGS:-} ./...

# Every fuzz target briefly (make fuzz runs each for 60 s); a crasher found is
# saved under the package's testdata/fuzz and fails the ordinary go test above
# from then on. A count, not a duration: Go 1.26's fuzz coordinator can report
# "context deadline exceeded" when a duration runs out (go.dev/issue/75804,
# fixed in 1.27), a failure with no crasher behind it.
make --no-print-directory fuzz FUZZTIME="${TEST_FUZZTIME:-1000x}"
