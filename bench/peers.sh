#!/usr/bin/env bash
# Data-plane benchmark: Trellis' sidecar pair measured beside HAProxy, nginx
# and the direct path, in one run of the shared harness (../shared/bench).
#
#   wrk -> sidecar A 127.0.0.2:17101 (HTTP in; mTLS out, SPIFFE-verified)
#       -> sidecar B 127.0.0.1:18443 (mTLS in, client cert verified)
#       -> backend 127.0.0.1:18080 (the harness's nginx)
#
# A real control plane configures both sidecars (a Service, a WorkloadEntry
# and a VirtualService for A's address) and its CA issues their certificates.
# Usage: bash bench/peers.sh            (full run, ~10 min)
#        REPS=1 DUR=3 bash bench/peers.sh   (smoke run)
# Every knob of the harness (DUR, REPS, CONNS, RATE...) passes through.
# Needs: cargo build --release; apt-get install haproxy nginx wrk nghttp2-client.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench/run.sh}
TRELLIS=${TRELLIS:-$ROOT/target/release/trellis}
CONCURRENCY=${CONCURRENCY:-1}   # worker threads per sidecar (the peers run one worker each)
# Pin and prioritise the sidecars exactly as the harness does its own servers.
if [ "${PIN:-1}" = 1 ]; then
    SPIN=(nice -n "${NICE:--20}" taskset -c "${SERVER_CPU:-1}")
else
    SPIN=(nice -n "${NICE:--20}")
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-peers-XXXX")
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

[ -x "$TRELLIS" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$HARNESS" ] || { echo "harness not found at $HARNESS (set HARNESS=)" >&2; exit 1; }

mkdir -p "$WORK/config"
cat > "$WORK/config/backend.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports:
  - {name: http, port: 8080, targetPort: 18443}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-0}
spec:
  address: 127.0.0.1
  labels: {app: backend}
  serviceAccount: backend
---
# wrk addresses sidecar A directly (the harness keeps 15001 for HAProxy),
# so its Host is A's address.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend-by-address}
spec:
  hosts: [127.0.0.2]
  http:
  - route:
    - destination: {host: backend}
YAML

token_a=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
token_b=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
printf '%s' "$token_a" > "$WORK/a.token"
printf '%s' "$token_b" > "$WORK/b.token"
cat > "$WORK/tokens.json" <<JSON
{"tokens":[{"token":"$token_a","namespace":"default","serviceAccount":"client"},
           {"token":"$token_b","namespace":"default","serviceAccount":"backend"}]}
JSON

"${SPIN[@]}" "$TRELLIS" control-plane --config-dir "$WORK/config" --listen-address 127.0.0.9 \
    --ca-dir "$WORK/ca" --workload-tokens "$WORK/tokens.json" --root-cert-out "$WORK/root.pem" &
pids+=($!)
for _ in $(seq 100); do [ -s "$WORK/root.pem" ] && break; sleep 0.1; done

common=(--discovery-address 127.0.0.9:15012 --root-cert "$WORK/root.pem" --namespace default
        --concurrency "$CONCURRENCY")
"${SPIN[@]}" "$TRELLIS" proxy "${common[@]}" --token-file "$WORK/b.token" --ip 127.0.0.1 \
    --service-account backend --pod-name backend-0 --workload-name backend --label app=backend \
    --app-port 18443=18080 --outbound-port 17001 --admin-port 17000 --stats-port 17090 --health-port 17021 \
    --status-port 17020 &
pid_b=$!; pids+=($pid_b)
"${SPIN[@]}" "$TRELLIS" proxy "${common[@]}" --token-file "$WORK/a.token" --ip 127.0.0.2 \
    --service-account client --pod-name client-0 --workload-name client --label app=client \
    --outbound-port 17101 &
pid_a=$!; pids+=($pid_a)

for health in 127.0.0.2:15021 127.0.0.1:17021; do
    for _ in $(seq 100); do
        curl -sf "http://$health/healthz/ready" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://$health/healthz/ready" >/dev/null || { echo "sidecar $health not ready" >&2; exit 1; }
done

EXTRA="trellis|http://127.0.0.2:17101/1k.bin|$pid_a|$pid_b${EXTRA:+ $EXTRA}" bash "$HARNESS"
