#!/usr/bin/env bash
# The whole stack on this machine (docs/stack.md walks through it): two Prometheus servers standing
# for two clusters, a Weir ring of three ingesters (RF=3) behind a router, an S3 bucket (versitygw),
# and Thanos Store, Compactor and Query over the bucket and the ingesters' StoreAPI.
#
#   prometheus a (:9090) ─┐ remote write            ┌▶ ingester 1 (:19391, ops :11002, gRPC :11001) ─┐
#   prometheus b (:9190) ─┴▶ router (:19291) ───────┼▶ ingester 2 (+200)                          ├─ blocks ─▶ versitygw (:7070, bucket weir)
#                           ops :10902               └▶ ingester 3 (+300)                          ─┘                 │
#   thanos query (:10904) ◀── StoreAPI ── ingesters 1–3, thanos store (:10905, ops :10906) ◀────────────────────────────┤
#                                                     thanos compact (ops :10907): compacts, deduplicates, downsamples ◀┘
#
# Prometheus a writes as tenant cluster-a with the external label cluster="a", b as cluster-b with
# cluster="b"; each scrapes itself and the four Weir nodes. Thanos Query's URL (printed at the end)
# sees both clusters, the fresh data in the ingesters and the history in the bucket.
#
# The ingesters keep 6h of blocks on disk (--tsdb.retention; a block leaves only once it is in the
# bucket): older data comes from the bucket through Thanos Store.
#
# Data and logs under data/stack/. Ctrl-C (or SIGTERM) stops everything: the Prometheus servers
# first (they send what they hold), then the router and Thanos, then the ingesters (each flushes its
# heads and ships its blocks), then the bucket. Uses bin/prometheus, bin/thanos and bin/versitygw (`make tools`), or WEIR_PROMETHEUS,
# WEIR_THANOS and WEIR_VERSITYGW. Environment:
#   WEIR                         a prebuilt weir binary (default: go build into bin/weir)
#   DATA                         where data and logs go (default data/stack)
#   PORT_OFFSET                  added to every port above (default 0)
#   CONSISTENCY_DELAY            thanos compact --consistency-delay: blocks younger than this are left
#                                alone (default 30m, Thanos' default)
#   COMPACT_INTERVAL             thanos compact --wait-interval between two passes (default 5m)
#   IGNORE_DELETION_MARKS_DELAY  thanos store --ignore-deletion-marks-delay: how long Store still serves
#                                blocks the compactor replaced (default 24h, Thanos' default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

prometheus=${WEIR_PROMETHEUS:-bin/prometheus}
thanos=${WEIR_THANOS:-bin/thanos}
versitygw=${WEIR_VERSITYGW:-bin/versitygw}
for tool in "$prometheus" "$thanos" "$versitygw"; do
  if [ ! -x "$tool" ]; then
    echo "stack.sh: $tool is missing: run \`make tools\` first (it installs the pinned prometheus, thanos and versitygw into ./bin)" >&2
    exit 1
  fi
done
weir=${WEIR:-}
if [ -z "$weir" ]; then
  go build -o bin/weir ./cmd/weir
  weir=bin/weir
fi
data=${DATA:-data/stack}
offset=${PORT_OFFSET:-0}
consistency_delay=${CONSISTENCY_DELAY:-30m}
compact_interval=${COMPACT_INTERVAL:-5m}
ignore_marks_delay=${IGNORE_DELETION_MARKS_DELAY:-24h}
mkdir -p "$data/s3/weir" "$data/prometheus-a" "$data/prometheus-b" "$data/store" "$data/compact"

port() { echo $(($1 + ${2:-0} * 100 + offset)); } # port BASE [NODE]
addr() { echo "127.0.0.1:$(port "$@")"; }

# The bucket: versitygw serves each directory under its root as a bucket.
cat > "$data/bucket.yml" <<EOF
type: S3
config:
  bucket: weir
  endpoint: $(addr 7070)
  access_key: stack
  secret_key: stacksecret
  insecure: true
  region: us-east-1
  bucket_lookup_type: path
EOF

endpoints=""
for i in 1 2 3; do
  endpoints+="${endpoints:+, }\"$(addr 10901 "$i")\""
done
echo "[{\"hashring\": \"default\", \"algorithm\": \"ketama\", \"endpoints\": [$endpoints]}]" > "$data/hashrings.json.tmp"
mv "$data/hashrings.json.tmp" "$data/hashrings.json"

# Four groups, stopped in this order: the Prometheus servers (which send what they still hold to
# the router), the router and Thanos, the ingesters (which ship their last blocks on the way out), and
# the bucket they ship to.
senders=() front=() ingesters=() bucket=()
stopping=0
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  for group in senders front ingesters bucket; do
    local -n pids=$group
    [ ${#pids[@]} -gt 0 ] || continue
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  done
}
trap 'stop; exit 0' INT TERM
start() { # start GROUP NAME CMD...: run CMD with its output in $data/NAME.log
  local -n group=$1
  local name=$2
  shift 2
  "$@" > "$data/$name.log" 2>&1 &
  group+=($!)
}

start bucket versitygw "$versitygw" --access stack --secret stacksecret --port "$(addr 7070)" posix "$data/s3"
# Thanos Store exits if its first look at the bucket fails: start the rest once the bucket answers.
for _ in $(seq 100); do
  (exec 3<> "/dev/tcp/127.0.0.1/$(port 7070)") 2>/dev/null && break
  sleep 0.1
done

for i in 1 2 3; do
  start ingesters "ingester$i" "$weir" receive \
    --tsdb.path="$data/ingester$i" \
    --remote-write.address="$(addr 19291 "$i")" \
    --http-address="$(addr 10902 "$i")" \
    --grpc-address="$(addr 10901 "$i")" \
    --label "replica=\"ingester$i\"" \
    --objstore.config-file="$data/bucket.yml" \
    --shipper.interval=5s \
    --tsdb.retention=6h
done
start front router "$weir" receive \
  --tsdb.path="$data/router" \
  --remote-write.address="$(addr 19291)" \
  --http-address="$(addr 10902)" \
  --grpc-address="$(addr 10901)" \
  --receive.hashrings-file="$data/hashrings.json" \
  --receive.replication-factor=3

# Thanos Store serves the bucket; the Compactor compacts 2h blocks into 2-day ones, merges the three
# replicas of every block into one (replica label), downsamples to 5m and 1h, and applies a retention
# per resolution; Query reads the ingesters and Store and deduplicates by the replica label.
start front thanos-store "$thanos" store \
  --data-dir="$data/store" \
  --objstore.config-file="$data/bucket.yml" \
  --grpc-address="$(addr 10905)" \
  --http-address="$(addr 10906)" \
  --sync-block-duration=10s \
  --ignore-deletion-marks-delay="$ignore_marks_delay"
start front thanos-compact "$thanos" compact \
  --data-dir="$data/compact" \
  --objstore.config-file="$data/bucket.yml" \
  --http-address="$(addr 10907)" \
  --wait --wait-interval="$compact_interval" \
  --consistency-delay="$consistency_delay" \
  --deduplication.replica-label=replica \
  --retention.resolution-raw=30d \
  --retention.resolution-5m=180d \
  --retention.resolution-1h=5y
query_endpoints=(--endpoint="$(addr 10905)")
for i in 1 2 3; do
  query_endpoints+=(--endpoint="$(addr 10901 "$i")")
done
start front thanos-query "$thanos" query \
  --grpc-address="$(addr 10903)" \
  --http-address="$(addr 10904)" \
  --query.replica-label=replica \
  "${query_endpoints[@]}"

weir_targets="\"$(addr 10902)\""
for i in 1 2 3; do
  weir_targets+=", \"$(addr 10902 "$i")\""
done
for c in a b; do
  web=$(addr 9090 "$([ "$c" = a ] && echo 0 || echo 1)")
  cat > "$data/prometheus-$c.yml" <<EOF
global:
  scrape_interval: 5s
  external_labels: {cluster: "$c"}
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["$web"]}]
  - job_name: weir
    static_configs: [{targets: [$weir_targets]}]
remote_write:
  - url: http://$(addr 19291)/api/v1/receive
    headers: {THANOS-TENANT: cluster-$c}
EOF
  start senders "prometheus-$c" "$prometheus" \
    --config.file="$data/prometheus-$c.yml" \
    --storage.tsdb.path="$data/prometheus-$c" \
    --web.listen-address="$web"
done

echo "remote write (router): http://$(addr 19291)/api/v1/receive (tenant header THANOS-TENANT)"
echo "prometheus a: http://$(addr 9090), b: http://$(addr 9090 1); ingesters' ops: http://$(addr 10902 1), :$(port 10902 2), :$(port 10902 3)"
echo "logs: $data/*.log"
echo "Thanos Query: http://$(addr 10904)"
# Stop everything as soon as one process ends on its own (a port in use, a bad flag): a stack with a
# hole in it would only confuse.
wait -n || true
[ "$stopping" = 1 ] && exit 0
echo "stack.sh: a process exited; stopping the others (see $data/*.log)" >&2
stop
exit 1
