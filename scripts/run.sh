#!/usr/bin/env bash
# make run: the whole system on this machine, in the foreground.
# PostgreSQL with pgvector (data kept in .data/postgres), the central on
# :8080 (metrics :9090) with static demo tokens, and an agent on
# 127.0.0.1:18080 in front of it when the agent is built. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PG_PORT=${RUN_PG_PORT:-54329}
DATA=$root/.data
mkdir -p "$DATA" bin

bash scripts/provision-postgres.sh
echo "run: building binaries"
go build -o bin/ ./cmd/...

bash scripts/pg-cluster.sh start "$DATA/postgres" "$PG_PORT"
admin_url=$(bash scripts/pg-cluster.sh url "$PG_PORT" postgres)
psql "$admin_url" -qAt -c "SELECT 1 FROM pg_database WHERE datname='kubernaut_audit'" | grep -q 1 ||
  psql "$admin_url" -q -c "CREATE DATABASE kubernaut_audit"
export DATABASE_URL
DATABASE_URL=$(bash scripts/pg-cluster.sh url "$PG_PORT" kubernaut_audit)

# Demo tokens in kube-apiserver's static token format, one per writer of the spec.
tokens=$DATA/tokens.csv
if [ ! -f "$tokens" ]; then
  {
    for sa in gateway-sa aianalysis-controller-sa kubernetes-executor-sa workflowexecution-controller-sa; do
      echo "demo-$sa-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'),system:serviceaccount:kubernaut-system:$sa,uid-$sa,\"system:serviceaccounts,system:serviceaccounts:kubernaut-system\""
    done
  } >"$tokens"
  chmod 600 "$tokens"
fi
token_of() { grep ":$1," "$tokens" | cut -d, -f1; }
token_of gateway-sa >"$DATA/agent-token"

# The demo's allow-list: the spec's default, and the AI Analysis controller
# may also export and place legal holds. Exports are signed with a demo key (openssl comes with
# ca-certificates).
authz=$DATA/authz.yaml
cat >"$authz" <<'YAML'
serviceAccounts:
- {name: gateway-sa, namespace: kubernaut-system, actions: [write:remediation]}
- {name: aianalysis-controller-sa, namespace: kubernaut-system, actions: [write:remediation, read:similar, read:audit, export:audit, hold:audit]}
- {name: kubernetes-executor-sa, namespace: kubernaut-system, actions: [write:remediation]}
- {name: workflowexecution-controller-sa, namespace: kubernaut-system, actions: [write:workflow]}
YAML
if [ ! -f "$DATA/export.key" ]; then
  openssl genpkey -algorithm ed25519 -out "$DATA/export.key"
  openssl pkey -in "$DATA/export.key" -pubout -out "$DATA/export.pub"
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "run: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash scripts/pg-cluster.sh stop "$DATA/postgres" || true
}
trap stop INT TERM EXIT

bin/central --auth static --token-file "$tokens" --authz-file "$authz" \
  --export-key-file "$DATA/export.key" --log-format console &
pids+=($!)
url=http://127.0.0.1:8080
for _ in $(seq 1 100); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

if [ -x bin/agent ]; then
  bin/agent --central-url "$url" --insecure --token-file "$DATA/agent-token" \
    --data-dir "$DATA/agent" --log-format console &
  pids+=($!)
  url=http://127.0.0.1:18080
  for _ in $(seq 1 100); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

cat <<MSG

  Data Storage is running. Write a first audit:

    curl -sS -X POST $url/api/v1/audit/remediation \\
      -H 'Authorization: Bearer $(token_of gateway-sa)' \\
      -H 'Content-Type: application/json' \\
      -d '{"remediationRequestID":"rr-abc123","alertName":"HighMemoryUsage","namespace":"production","cluster":"us-west-2","priority":"P0"}'

  Read it back (the AI Analysis controller may read:audit):

    curl -sS 'http://127.0.0.1:8080/api/v1/audit/remediation?cluster=us-west-2&limit=10' \\
      -H 'Authorization: Bearer $(token_of aianalysis-controller-sa)'
    curl -sS http://127.0.0.1:8080/api/v1/remediations/rr-abc123/timeline \\
      -H 'Authorization: Bearer $(token_of aianalysis-controller-sa)'

  Export everything, signed, and check the file offline (this demo grants export:audit):

    curl -sS http://127.0.0.1:8080/api/v1/audit/export \\
      -H 'Authorization: Bearer $(token_of aianalysis-controller-sa)' >audit.ndjson
    bin/central verify-export audit.ndjson --public-key $DATA/export.pub

  Keep that remediation's audits from retention with a legal hold (this demo grants hold:audit):

    curl -sS -X POST http://127.0.0.1:8080/api/v1/legal-holds \
      -H 'Authorization: Bearer $(token_of aianalysis-controller-sa)' \
      -H 'Content-Type: application/json' -d '{"remediationRequestID":"rr-abc123","reason":"demo dispute"}'

  Find it by similarity:

    curl -sS -X POST http://127.0.0.1:8080/api/v1/incidents/similar \
      -H 'Authorization: Bearer $(token_of aianalysis-controller-sa)' \
      -H 'Content-Type: application/json' -d '{"text":"HighMemoryUsage production","limit":3}'

  Demo tokens: $tokens    Metrics: http://127.0.0.1:9090/metrics    Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
