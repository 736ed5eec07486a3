#!/usr/bin/env bash
# A three-node Weir ring on this machine: every node routes and ingests, replication factor 3, ketama
# placement, the same hashrings file a Thanos Receive ring would use. Remote write to any node:
#   node 0: http://127.0.0.1:19291/api/v1/receive   ops http://127.0.0.1:10902   gRPC 127.0.0.1:10901
#   node 1: ports + 100 (19391, 11002, 11001); node 2: ports + 200
# Data under data/ring/node<N>/ (each with its FILESYSTEM bucket). Ctrl-C (or SIGTERM) stops all three;
# each flushes its heads and ships its blocks first. Set PORT_OFFSET to move every port, WEIR to use a
# prebuilt binary, DATA to put the data elsewhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

weir=${WEIR:-}
if [ -z "$weir" ]; then
  go build -o bin/weir ./cmd/weir
  weir=bin/weir
fi
data=${DATA:-data/ring}
offset=${PORT_OFFSET:-0}
mkdir -p "$data"

port() { echo $(($1 + $2 * 100 + offset)); } # port BASE NODE
endpoints=""
for i in 0 1 2; do
  endpoints+="${endpoints:+, }\"127.0.0.1:$(port 10901 "$i")\""
done
echo "[{\"hashring\": \"default\", \"algorithm\": \"ketama\", \"endpoints\": [$endpoints]}]" > "$data/hashrings.json.tmp"
mv "$data/hashrings.json.tmp" "$data/hashrings.json"

pids=()
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM
for i in 0 1 2; do
  "$weir" receive \
    --tsdb.path="$data/node$i" \
    --remote-write.address="127.0.0.1:$(port 19291 "$i")" \
    --http-address="127.0.0.1:$(port 10902 "$i")" \
    --grpc-address="127.0.0.1:$(port 10901 "$i")" \
    --receive.hashrings-file="$data/hashrings.json" \
    --receive.local-endpoint="127.0.0.1:$(port 10901 "$i")" \
    --receive.replication-factor=3 \
    --label "replica=\"node$i\"" \
    > "$data/node$i.log" 2>&1 &
  pids+=($!)
  echo "node $i: remote write http://127.0.0.1:$(port 19291 "$i")/api/v1/receive, ring status http://127.0.0.1:$(port 10902 "$i")/api/v1/status/ring, log $data/node$i.log"
done
wait "${pids[@]}"
