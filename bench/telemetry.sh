#!/usr/bin/env bash
# Telemetry overhead: two Trellis sidecar pairs measured in one run of the
# shared harness (../shared/bench), beside HAProxy, nginx and the direct
# path. One control plane configures both pairs; Telemetry resources
# select them by label:
#
#   trellis-off: every standard metric disabled (Istio's `disabled: true`
#                override), no access log, no tracing;
#   trellis-on:  Istio's standard metrics, an access log line per request
#                to a file, and 1% of requests traced to a Zipkin collector.
#
#   wrk -> A-off 127.0.0.2:17101 -> B-off 127.0.0.1:18443 -> nginx 127.0.0.1:18080
#   wrk -> A-on  127.0.0.4:17201 -> B-on  127.0.0.3:18443 -> nginx 127.0.0.3:18081
#
# The on pair's backend is a second nginx with the harness's config, on
# its own address (a sidecar serves its app on its own address).
# Usage: bash bench/telemetry.sh                (CONNS='1 64', ~8 min)
#        REPS=1 DUR=3 bash bench/telemetry.sh   (smoke run)
#        PROFILE=/tmp/on bash bench/telemetry.sh (perf profiles of the on pair;
#                                                 PROFILE_PAIR=off: the off pair)
# Every knob of the harness (DUR, REPS, CONNS, RATE...) passes through.
# Needs: cargo build --release; apt-get install haproxy nginx wrk nghttp2-client.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench/run.sh}
TRELLIS=${TRELLIS:-$ROOT/target/release/trellis}
export CONNS=${CONNS-"1 64"}
export RATE=${RATE-"1x2000"}
export WORK=${WORK:-${TMPDIR:-/tmp}/peerbench-work}
if [ "${PIN:-1}" = 1 ]; then
    SPIN=(nice -n "${NICE:--20}" taskset -c "${SERVER_CPU:-1}")
else
    SPIN=(nice -n "${NICE:--20}")
fi
OWN=$(mktemp -d "${TMPDIR:-/tmp}/trellis-telemetry-XXXX")
pids=()
profilers=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$OWN"
}
trap cleanup EXIT INT TERM

[ -x "$TRELLIS" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$HARNESS" ] || { echo "harness not found at $HARNESS (set HARNESS=)" >&2; exit 1; }

# The harness's certificates, configs and 1k.bin, then a second backend.
SETUP_ONLY=1 bash "$HARNESS" >/dev/null
sed -e 's/listen 127.0.0.1:18080/listen 127.0.0.3:18081/' \
    -e "s|pid .*;|pid $OWN/backend-on.pid;|" \
    -e "s|error_log .*;|error_log $OWN/backend-on.err warn;|" \
    "$WORK/conf/backend.conf" > "$OWN/backend-on.conf"
"${SPIN[@]}" nginx -c "$OWN/backend-on.conf" -g 'daemon off;' &
backend_on=$!; pids+=("$backend_on")

# A Zipkin collector that takes every batch (the traced 1% goes there).
cat > "$OWN/zipkin.py" <<'PY'
import http.server
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(202); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.5", 9411), Sink).serve_forever()
PY
python3 "$OWN/zipkin.py" &
pids+=($!)

mkdir -p "$OWN/config"
backend() {  # NAME ADDRESS
    cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: $1}
spec:
  selector: {app: $1}
  ports:
  - {name: http, port: 8080, targetPort: 18443}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: $1-0}
spec:
  address: $2
  labels: {app: $1}
  serviceAccount: $1
---
YAML
}
by_address() {  # A's ADDRESS, BACKEND: wrk's Host is A's address
    cat <<YAML
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-$1}
spec:
  hosts: [$1]
  http:
  - route:
    - destination: {host: $2}
---
YAML
}
{
    backend backend-off 127.0.0.1
    backend backend-on 127.0.0.3
    backend zipkin 127.0.0.5 | sed 's/port: 8080, targetPort: 18443/port: 9411/'
    by_address 127.0.0.2 backend-off
    by_address 127.0.0.4 backend-on
    cat <<'YAML'
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: telemetry-off, namespace: default}
spec:
  selector: {matchLabels: {telemetry: "off"}}
  metrics:
  - overrides:
    - match: {metric: ALL_METRICS}
      disabled: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: telemetry-on, namespace: default}
spec:
  selector: {matchLabels: {telemetry: "on"}}
  accessLogging:
  - providers: [{name: file}]
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 1
YAML
} > "$OWN/config/mesh.yaml"
cat > "$OWN/mesh-config.yaml" <<YAML
extensionProviders:
- name: file
  envoyFileAccessLog: {path: $OWN/access.log}
- name: zipkin
  zipkin: {service: zipkin.default.svc.cluster.local, port: 9411}
YAML

token() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
entries=()
for sa in client-off backend-off client-on backend-on; do
    token > "$OWN/$sa.token"
    entries+=("{\"token\":\"$(cat "$OWN/$sa.token")\",\"namespace\":\"default\",\"serviceAccount\":\"$sa\"}")
done
(IFS=,; echo "{\"tokens\":[${entries[*]}]}") > "$OWN/tokens.json"

"${SPIN[@]}" "$TRELLIS" control-plane --config-dir "$OWN/config" --listen-address 127.0.0.9 \
    --mesh-config "$OWN/mesh-config.yaml" --ca-dir "$OWN/ca" \
    --workload-tokens "$OWN/tokens.json" --root-cert-out "$OWN/root.pem" &
pids+=($!)
for _ in $(seq 100); do [ -s "$OWN/root.pem" ] && break; sleep 0.1; done

common=(--discovery-address 127.0.0.9:15012 --root-cert "$OWN/root.pem" --namespace default
        --concurrency "${CONCURRENCY:-1}")
sidecar() {  # SERVICE_ACCOUNT IP TELEMETRY ARGS...
    local sa=$1 ip=$2 telemetry=$3; shift 3
    "${SPIN[@]}" "$TRELLIS" proxy "${common[@]}" --token-file "$OWN/$sa.token" --ip "$ip" \
        --service-account "$sa" --pod-name "$sa-0" --workload-name "$sa" --label "app=$sa" \
        --label "telemetry=$telemetry" "$@" &
    pids+=($!)
    last=$!
}
# B-off shares 127.0.0.1 with the harness: its own ports there.
sidecar backend-off 127.0.0.1 off --app-port 18443=18080 --outbound-port 17001 \
    --admin-port 17000 --stats-port 17090 --health-port 17021 --status-port 17020
b_off=$last
sidecar client-off 127.0.0.2 off --outbound-port 17101
a_off=$last
sidecar backend-on 127.0.0.3 on --app-port 18443=18081 --outbound-port 17301
b_on=$last
sidecar client-on 127.0.0.4 on --outbound-port 17201
a_on=$last

for health in 127.0.0.2:15021 127.0.0.1:17021 127.0.0.3:15021 127.0.0.4:15021; do
    for _ in $(seq 100); do
        curl -sf "http://$health/healthz/ready" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://$health/healthz/ready" >/dev/null || { echo "sidecar $health not ready" >&2; exit 1; }
done
if [ -n "${PROFILE:-}" ]; then
    # Where the on pair's time goes: wrk against it alone, each sidecar
    # sampled by perf (call graphs from DWARF; needs a release build with
    # debug info: CARGO_PROFILE_RELEASE_DEBUG=line-tables-only).
    pair=${PROFILE_PAIR:-on}
    case $pair in
        on) url=http://127.0.0.4:17201/1k.bin ;;
        off) url=http://127.0.0.2:17101/1k.bin ;;
        *) echo "PROFILE_PAIR is on or off" >&2; exit 1 ;;
    esac
    for side in "a_$pair" "b_$pair"; do
        perf record -F 2000 --call-graph dwarf,16384 -o "$PROFILE.$side" -p "${!side}" \
            -- sleep "${DUR:-10}" >/dev/null 2>&1 &
        profilers+=($!)
    done
    wrk -t1 -c64 -d"${DUR:-10}s" "$url"
    wait "${profilers[@]}"
    echo "profiles: $PROFILE.a_$pair $PROFILE.b_$pair (perf report -i FILE --no-children)"
    exit 0
fi
EXTRA="trellis-off|http://127.0.0.2:17101/1k.bin|$a_off|$b_off trellis-on|http://127.0.0.4:17201/1k.bin|$a_on|$b_on||$backend_on${EXTRA:+ $EXTRA}" \
    bash "$HARNESS"
# Each pair had the telemetry it should (the harness's backend is gone by
# now, but the sidecars still answer their stats ports).
if curl -s http://127.0.0.1:17090/stats/prometheus | grep -q '^istio_requests_total{'; then
    echo "WARNING: the off pair reported metrics" >&2
fi
curl -s http://127.0.0.3:15090/stats/prometheus | grep -q '^istio_requests_total{' ||
    echo "WARNING: the on pair reported no metrics" >&2
echo "access log lines written by the on pair: $(wc -l < "$OWN/access.log" 2>/dev/null || echo 0)"
