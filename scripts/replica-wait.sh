#!/usr/bin/env bash
# Latency of a 3-node RF=3 ring under `weir bench` with one slow replica, for each replica wait
# policy (--receive.replica-wait): node 2 is stopped (SIGSTOP) for STALL_MS of every second, as a
# node in long GC pauses or on a stalling disk would be. The load goes to node 0. Prints the
# bench's latency percentiles and what each node stored. Usage: bash scripts/replica-wait.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration=${DURATION:-20s}
rate=${RATE:-20000}
stall_ms=${STALL_MS:-300}
go build -o bin/weir ./cmd/weir
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # policy
  local policy=$1 dir=$work/$1 pids=()
  mkdir -p "$dir"
  echo "[{\"hashring\":\"default\",\"algorithm\":\"ketama\",\"endpoints\":[\"127.0.0.1:21901\",\"127.0.0.1:21902\",\"127.0.0.1:21903\"]}]" > "$dir/hashrings.json"
  for i in 0 1 2; do
    bin/weir receive --tsdb.path="$dir/node$i" --remote-write.address=127.0.0.1:$((21291 + i)) \
      --http-address=127.0.0.1:$((21391 + i)) --grpc-address=127.0.0.1:$((21901 + i)) \
      --receive.hashrings-file="$dir/hashrings.json" --receive.local-endpoint=127.0.0.1:$((21901 + i)) \
      --receive.replication-factor=3 --receive.replica-wait="$policy" > "$dir/node$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 0 1 2; do
    until curl -sf "http://127.0.0.1:$((21391 + i))/-/ready" > /dev/null; do sleep 0.2; done
  done
  ( while kill -STOP "${pids[2]}" 2>/dev/null; do sleep "0.$(printf '%03d' "$stall_ms")"; kill -CONT "${pids[2]}"; sleep "0.$(printf '%03d' $((1000 - stall_ms)))"; done ) &
  local staller=$!
  bin/weir bench --url=http://127.0.0.1:21291/api/v1/receive --series=20000 --samples-per-request=1000 \
    --concurrency=4 --rate="$rate" --duration="$duration" --output=json > "$dir/bench.json" 2> "$dir/bench.log"
  kill "$staller"; wait "$staller" 2>/dev/null || true
  kill -CONT "${pids[2]}"
  kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
  python3 - "$policy" "$dir/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
l = r["latency_seconds"]
print(f"replica-wait={sys.argv[1]:6}  requests ok {r['requests_ok']:6} failed {r['requests_failed']:4}  "
      f"p50 {l['p50']*1000:7.1f} ms  p90 {l['p90']*1000:7.1f} ms  p99 {l['p99']*1000:7.1f} ms  max {l['max']*1000:7.1f} ms")
PY
}
echo "node 2 stopped ${stall_ms} ms of every second; ${rate} samples/s for ${duration}"
run all
run quorum
