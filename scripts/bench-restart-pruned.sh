#!/usr/bin/env bash
# bench-restart-pruned.sh BIN N: the restart of an ingester whose tenants were all pruned. BIN (a
# weir binary) receives N tenants x 100 series for 15 s (weir bench), prunes them all (idle 5s), stops
# (SIGTERM) and starts again; prints the start's time to ready, RSS at ready and tenants open.
# Uses ports 19391-19393 on loopback. docs/benchmarks.md, "Restart with pruned tenants".
set -euo pipefail
BIN=$1; N=$2
D=$(mktemp -d)
ARGS=(receive --tsdb.path=$D/data --tsdb.tenant-idle-timeout=5s --remote-write.address=127.0.0.1:19391 --http-address=127.0.0.1:19392 --grpc-address=127.0.0.1:19393 --log.level=warn)
metric() { curl -s 127.0.0.1:19392/metrics | awk -v m="$1" '$1==m {print $2}'; }
ready() { for i in $(seq 1 6000); do [ "$(curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:19392/-/ready)" = 200 ] && return 0; sleep 0.05; done; return 1; }
"$BIN" "${ARGS[@]}" > $D/log1 2>&1 & P=$!
ready
"$BIN" bench --url=http://127.0.0.1:19391/api/v1/receive --tenants=$N --series=$((N*100)) --samples-per-request=100 --duration=15s > $D/bench.log 2>&1 || true
for i in $(seq 1 600); do o=$(metric weir_tenants_open); [ "${o%.*}" = 0 ] && break; sleep 1; done
echo "open before stop: $(metric weir_tenants_open), pruned: $(metric weir_tenants_pruned_total)"
kill -TERM $P; wait $P || true
"$BIN" "${ARGS[@]}" > $D/log2 2>&1 & P=$!
s=$(date +%s.%N); ready; e=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' /proc/$P/status)
echo "start->ready $(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.2f", e - s}') s, RSS at ready ${rss} kB, tenants open $(metric weir_tenants_open), startup tenants $(metric weir_startup_tenants)"
kill -TERM $P; wait $P || true
rm -rf $D
