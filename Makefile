# Everything a new user needs on a fresh Debian machine (run as root or with sudo):
#   make run    the system in the foreground: PostgreSQL+pgvector, central, agent
#   make test   provisions PostgreSQL+pgvector, runs vet and the race-enabled suite
.PHONY: run test build images vet fmt clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

build:
	go build -o bin/ ./cmd/...

# OCI images of the central and the agent, linux/amd64 and linux/arm64, without a container daemon
# (package images; README "Images"): dist/images/datastorage-{central,agent}-VERSION{/,.oci.tar}.
images:
	go run ./images/cmd/images --out dist/images

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin dist

# Benchmarks (see README "Benchmarks"): a throwaway PostgreSQL, the central and agents as processes,
# load, exactly-once verification, bench-results/{results.json,report.html}.
.PHONY: bench bench-quick
bench:
	go run ./bench/cmd/bench --out bench-results

bench-quick:
	go run ./bench/cmd/bench --quick --out bench-results

# Fuzzing (see README "Reliability"): every Fuzz target of the module, FUZZTIME each. A crasher Go finds is
# written to the package's testdata/fuzz/<Target>/ and from then on runs in every `go test` as a regression test.
# A duration can end in a spurious "context deadline exceeded" on Go 1.26 (go.dev/issue/75804); a count (1000x) cannot.
FUZZTIME ?= 60s
.PHONY: fuzz
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' --exclude-dir=.data --exclude-dir=.git '^func Fuzz' . | sort); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz: $$(dirname $$f) $$t for $(FUZZTIME)"; \
	    go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$(dirname $$f); \
	  done; \
	done

# Fault injection (see README "Reliability"): a throwaway PostgreSQL, the central and agents as processes under
# load; kills, a database outage, lost acknowledgements, a full disk, a corrupted buffer; exactly-once verified.
# Then the failover phase (README "HA PostgreSQL"): a throwaway Patroni cluster (scripts/provision-ha.sh installs
# Debian's patroni and etcd-server), its primary killed -9 under load. One phase: go run ./chaos/cmd/chaos --phases failover
.PHONY: chaos
chaos:
	go run ./chaos/cmd/chaos
