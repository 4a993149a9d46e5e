# Everything a new user needs on a fresh Debian machine (run as root or with sudo):
#   make run    the system in the foreground: PostgreSQL+pgvector, central, agent
#   make test   provisions PostgreSQL+pgvector, runs vet and the race-enabled suite
.PHONY: run test build vet fmt clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

build:
	go build -o bin/ ./cmd/...

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Benchmarks (see README "Benchmarks"): a throwaway PostgreSQL, the central and agents as processes,
# load, exactly-once verification, bench-results/{results.json,report.html}.
.PHONY: bench bench-quick
bench:
	go run ./bench/cmd/bench --out bench-results

bench-quick:
	go run ./bench/cmd/bench --quick --out bench-results
