#!/usr/bin/env bash
# A three-node Weir ring on this machine that forms by gossip (--ring.membership=memberlist), without
# a hashrings file: every node routes and ingests, replication factor 3, ketama placement. Nodes 1
# and 2 join node 0; every node announces itself and builds the same ring (compare config_hash on
# the status pages). Remote write to any node:
#   node 0: http://127.0.0.1:19291/api/v1/receive   ops http://127.0.0.1:10902   gRPC 127.0.0.1:10901   gossip 127.0.0.1:7946
#   node 1: ports + 100; node 2: ports + 200
# Data under data/gossip/node<N>/. Ctrl-C (or SIGTERM) stops all three: each announces that it is
# leaving, then flushes its heads and ships its blocks. Stop a single node with
#   kill -TERM <pid>     (the pids are printed below)
# to watch the others drop it from their ring at once. Set PORT_OFFSET to move every port, WEIR to use
# a prebuilt binary, DATA to put the data elsewhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

weir=${WEIR:-}
if [ -z "$weir" ]; then
  go build -o bin/weir ./cmd/weir
  weir=bin/weir
fi
data=${DATA:-data/gossip}
offset=${PORT_OFFSET:-0}
mkdir -p "$data"

port() { echo $(($1 + $2 * 100 + offset)); } # port BASE NODE

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
    --receive.local-endpoint="127.0.0.1:$(port 10901 "$i")" \
    --receive.replication-factor=3 \
    --ring.membership=memberlist \
    --memberlist.node-name="node$i" \
    --memberlist.bind-address="127.0.0.1:$(port 7946 "$i")" \
    --memberlist.join="127.0.0.1:$(port 7946 0)" \
    --label "replica=\"node$i\"" \
    > "$data/node$i.log" 2>&1 &
  pids+=($!)
  echo "node $i (pid $!): remote write http://127.0.0.1:$(port 19291 "$i")/api/v1/receive, ring status http://127.0.0.1:$(port 10902 "$i")/api/v1/status/ring, log $data/node$i.log"
done
wait "${pids[@]}"
