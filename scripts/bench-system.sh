#!/usr/bin/env bash
# Whole-receiver benchmark on this machine: drives each receiver with `weir bench` on loopback and
# prints samples/s, receiver CPU-seconds per million samples, and peak RSS per active series — the
# figures of DESIGN §4. Receivers: weir (one node, embedded default), weir-ring (three nodes, RF=3,
# deploy/local/ring.sh), weir-otlp and weir-ring-otlp (the same, sent the same series as OTLP/HTTP,
# `weir bench --protocol otlp`), prometheus (its remote-write receiver; prometheus-otlp: its OTLP
# receiver, the same translator as Weir's), thanos (Thanos Receive, one node) and vm (VictoriaMetrics
# single-node with its defaults, the fastest open receiver; vm-otlp: its OpenTelemetry endpoint), the last
# three when their binaries are in ./bin (`make tools` and `make $PWD/bin/victoria-metrics` build them). Fixed ports below Linux's
# ephemeral range (32768+), so that no outgoing connection holds one.
#
#   scripts/bench-system.sh [--series N] [--tenants N] [--churn N] [--duration 30s] [--warmup 10s] [--receivers "weir weir-rw2 weir-otlp weir-ring weir-ring-otlp prometheus thanos vm vm-otlp"]
#   (also prometheus-otlp)
#
# Churn (--churn N): during the measurement (the warm-up only creates the active series), N of them are
# replaced by new ones per minute (`weir bench --churn`), so CPU per sample includes creating series; the
# report adds the new series per second the receiver took and its peak RSS per series it holds. A slot
# replaced faster than the generator comes back to it is never sent: new series/s is then at most
# samples/s (every sample a new series), which makes a churn above samples/s a measure of how fast the
# receiver creates series.
#
# The generator shares the machine with the receiver: on two cores, samples/s is bounded by both, while
# CPU-seconds per million samples is the receiver's own cost.
#
# Many tenants (--tenants N, `make bench-system-tenants`): --series are spread over N tenants, one request
# per tenant in turn (--series/N samples each), and the report adds the per-tenant figures of issue #23:
# how long the first writes took to create every tenant (tenants/s, from the tenant directories on disk;
# a receiver that has not created all of them by the end of the warm-up shows how many it had), peak RSS
# per tenant, and the time from SIGTERM to exit (flushing and shipping every tenant). WEIR=path uses that
# weir binary instead of building bin/weir.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

series=100000 tenants=1 churn=0 duration=30s warmup=10s receivers="weir weir-rw2 weir-otlp weir-ring weir-ring-otlp prometheus thanos vm vm-otlp"
while [ $# -gt 0 ]; do
  case "$1" in
    --series) series=$2; shift 2 ;;
    --tenants) tenants=$2; shift 2 ;;
    --churn) churn=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --receivers) receivers=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

weir=${WEIR:-bin/weir}
[ -n "${WEIR:-}" ] || go build -o bin/weir ./cmd/weir
per_request=$(( series / tenants < 2000 ? series / tenants : 2000 ))
load=(--tenants "$tenants" --series "$series" --samples-per-request "$per_request")
work=$(mktemp -d)
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

wait_ready() { # URL LOG
  for _ in $(seq 1200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "not ready after 120 s: $1; last lines of $2:" >&2
  tail -n 30 "$2" >&2 || true
  return 1
}
cpu_of() { # metrics URLs… → summed process_cpu_seconds_total
  local total=0 v
  for u in "$@"; do
    v=$(curl -fsS "$u" | awk '/^process_cpu_seconds_total /{print $2}')
    total=$(awk -v a="$total" -v b="$v" 'BEGIN{printf "%.3f", a+b}')
  done
  echo "$total"
}
hwm_of() { # pids… → summed peak RSS in bytes
  local total=0 kb
  for p in "$@"; do
    kb=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status")
    total=$((total + kb * 1024))
  done
  echo "$total"
}
json_field() { # FILE FIELD
  sed -n "s/^ *\"$2\": *\([0-9.e+]*\),*$/\1/p" "$1" | head -n1
}
tenant_dirs() { # DIR → tenant directories created under it (both Weir and Thanos name them by tenant)
  find "$1" -mindepth 1 -maxdepth 3 -type d -name 'tenant-*' 2>/dev/null | wc -l
}
now() { date +%s.%N; }
# The ports are fixed, and other worktrees on the machine run this script too: a receiver that cannot
# bind would leave wait_ready and the load talking to someone else's process. Fail instead.
require_free() { # PORT…
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "port $p is in use (another bench-system run?); not measuring someone else's receiver" >&2
      exit 1
    fi
  done
}

declare -A cost rss # per receiver: CPU-s per 1M samples, peak RSS per series (for the ratios at the end)
if [ "$tenants" -gt 1 ]; then
  printf '%-12s %14s %18s %18s %16s %16s %12s\n' receiver samples/s "CPU-s per 1M" "peak RSS/series" "peak RSS/tenant" "tenants/s (1st)" "SIGTERM→exit"
elif [ "$churn" -gt 0 ]; then
  printf '%-12s %14s %18s %18s %16s %20s\n' receiver samples/s "CPU-s per 1M" "peak RSS/series" "new series/s" "RSS/series created"
else
  printf '%-12s %14s %18s %18s %16s\n' receiver samples/s "CPU-s per 1M" "peak RSS/series" "wire B/sample"
fi
for r in $receivers; do
  dir="$work/$r"; mkdir -p "$dir"
  rpids=() metrics=()
  url=""
  proto=1.0
  case "$r" in
    weir|weir-rw2|weir-otlp) # one node; weir-rw2: the same load as Remote Write 2.0 (weir-otlp: as OTLP, below)
      [ "$r" = weir-rw2 ] && proto=2.0
      require_free 23291 23902 23901
      "$weir" receive --tsdb.path="$dir" --remote-write.address=127.0.0.1:23291 --http-address=127.0.0.1:23902 \
        --grpc-address=127.0.0.1:23901 >"$dir.log" 2>&1 &
      rpids=($!); metrics=(http://127.0.0.1:23902/metrics); url=http://127.0.0.1:23291/api/v1/receive
      wait_ready http://127.0.0.1:23902/-/ready "$dir.log" ;;
    weir-ring | weir-ring-otlp)
      require_free 21291 12902 13002 13102
      WEIR=$weir DATA="$dir" PORT_OFFSET=2000 bash deploy/local/ring.sh >"$dir.log" 2>&1 &
      pids+=($!)
      for i in 0 1 2; do wait_ready "http://127.0.0.1:$((12902 + i * 100))/-/ready" "$dir/node$i.log"; metrics+=("http://127.0.0.1:$((12902 + i * 100))/metrics"); done
      mapfile -t rpids < <(pgrep -f "tsdb.path=$dir/node")
      url=http://127.0.0.1:21291/api/v1/receive ;;
    prometheus | prometheus-otlp)
      [ -x bin/prometheus ] || { echo "$r: bin/prometheus missing (make tools)"; continue; }
      require_free 23090
      printf 'global: {}\n' >"$dir/prometheus.yml"
      bin/prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" --web.listen-address=127.0.0.1:23090 \
        --web.enable-remote-write-receiver --web.enable-otlp-receiver >"$dir.log" 2>&1 &
      rpids=($!); metrics=(http://127.0.0.1:23090/metrics); url=http://127.0.0.1:23090/api/v1/write
      wait_ready http://127.0.0.1:23090/-/ready "$dir.log" ;;
    thanos)
      [ -x bin/thanos ] || { echo "$r: bin/thanos missing (make tools)"; continue; }
      require_free 23391 23392 23393
      bin/thanos receive --tsdb.path="$dir" --remote-write.address=127.0.0.1:23391 --http-address=127.0.0.1:23392 \
        --grpc-address=127.0.0.1:23393 --label 'replica="r1"' >"$dir.log" 2>&1 &
      rpids=($!); metrics=(http://127.0.0.1:23392/metrics); url=http://127.0.0.1:23391/api/v1/receive
      wait_ready http://127.0.0.1:23392/-/ready "$dir.log" ;;
    vm | vm-otlp)
      [ -x bin/victoria-metrics ] || { echo "$r: bin/victoria-metrics missing (make \$PWD/bin/victoria-metrics)"; continue; }
      [ "$tenants" -gt 1 ] && { echo "$r: single-node VictoriaMetrics has no tenants; skipped"; continue; }
      require_free 23428
      bin/victoria-metrics -storageDataPath="$dir/data" -httpListenAddr=127.0.0.1:23428 >"$dir.log" 2>&1 &
      rpids=($!); metrics=(http://127.0.0.1:23428/metrics); url=http://127.0.0.1:23428/api/v1/write
      wait_ready http://127.0.0.1:23428/health "$dir.log" ;;
    *) echo "unknown receiver $r" >&2; exit 2 ;;
  esac
  case "$r" in weir-ring*) ;; *) pids+=("${rpids[@]}") ;; esac
  if [[ "$r" == vm-otlp ]]; then
    url=${url%/api/v1/*}/opentelemetry/v1/metrics proto=otlp
  elif [[ "$r" == *-otlp ]]; then # the same receiver, written over OTLP/HTTP
    url=${url%/api/v1/*}/api/v1/otlp/v1/metrics proto=otlp
  fi

  # Warm-up creates every series (and tenant), so the measured part is steady-state ingestion.
  created=""
  t0=$(now)
  "$weir" bench --url "$url" --protocol "$proto" "${load[@]}" --duration "$warmup" --output json >"$dir.warmup.json" 2>/dev/null &
  gen=$!
  if [ "$tenants" -gt 1 ]; then
    # Polled, not waited for: this measures when the last tenant directory appeared (to ±0.2 s).
    while kill -0 "$gen" 2>/dev/null; do
      n=$(tenant_dirs "$dir")
      if [ "$n" -ge "$tenants" ]; then created=$(awk -v a="$t0" -v b="$(now)" -v n="$n" 'BEGIN{printf "%.0f", n/(b-a)}'); break; fi
      sleep 0.2
    done
    [ -n "$created" ] || created="$(tenant_dirs "$dir")/$tenants only"
  fi
  wait "$gen" || true
  before=$(cpu_of "${metrics[@]}")
  "$weir" bench --url "$url" --protocol "$proto" "${load[@]}" --churn "$churn" --duration "$duration" --output json >"$dir.json" 2>/dev/null || true
  after=$(cpu_of "${metrics[@]}")
  acked=$(json_field "$dir.json" samples_acked)
  rate=$(json_field "$dir.json" samples_per_second)
  if [ -z "$acked" ] || [ "$acked" = 0 ]; then
    echo "$r: no sample acknowledged; see $dir.log and $dir.json" >&2
    cat "$dir.json" >&2 || true
    exit 1
  fi
  hwm=$(hwm_of "${rpids[@]}")
  cost[$r]=$(awk -v a="$before" -v b="$after" -v acked="$acked" 'BEGIN{printf "%.4f", (b-a)/acked*1e6}')
  rss[$r]=$(awk -v hwm="$hwm" -v s="$series" 'BEGIN{printf "%.0f", hwm/s}')
  wire=$(awk -v b="$(json_field "$dir.json" bytes_sent)" -v s="$(json_field "$dir.json" samples_sent)" 'BEGIN{printf "%.2f", b/s}')
  t0=$(now)
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  stop=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f s", b-a}')
  if [ "$tenants" -gt 1 ]; then
    awk -v r="$r" -v rate="$rate" -v c="${cost[$r]}" -v m="${rss[$r]}" -v pt="$(awk -v h="$hwm" -v t="$tenants" 'BEGIN{printf "%.0f", h/t/1024}')" -v cr="$created" -v st="$stop" \
      'BEGIN{ printf "%-12s %14.0f %18.2f %15.0f B %13s KiB %16s %12s\n", r, rate, c, m, pt, cr, st }'
  elif [ "$churn" -gt 0 ]; then
    n=$(json_field "$dir.json" series_created)
    awk -v r="$r" -v rate="$rate" -v c="${cost[$r]}" -v m="${rss[$r]}" -v n="$n" -v s="$series" \
      -v d="$(json_field "$dir.json" duration_seconds)" -v h="$hwm" \
      'BEGIN{ ns = (n-s)/d; if (rate < ns) ns = rate; made = s + ns*d; printf "%-12s %14.0f %18.2f %15.0f B %16.0f %18.0f B\n", r, rate, c, m, ns, h/made }'
  else
    awk -v r="$r" -v rate="$rate" -v c="${cost[$r]}" -v m="${rss[$r]}" -v w="$wire" \
      'BEGIN{ printf "%-12s %14.0f %18.2f %15.0f B %14.2f B\n", r, rate, c, m, w }'
  fi
done

# The ratios DESIGN §4 states its targets in (CPU per client sample; lower is better for Weir).
ratio() { # LABEL A B TARGET: prints A/B of the CPU costs when both were measured
  [ -n "${cost[$2]:-}" ] && [ -n "${cost[$3]:-}" ] || return 0
  awk -v l="$1" -v a="${cost[$2]}" -v b="${cost[$3]}" -v t="$4" 'BEGIN{ printf "%-46s %6.2f  %s\n", l, a/b, t }'
}
echo
ratio "weir-ring CPU per client sample / weir" weir-ring weir "(target <= 3; Thanos 4-6)"
ratio "weir-rw2 CPU per sample / weir (RW 2.0 / 1.0)" weir-rw2 weir "(target <= 1)"
ratio "weir-otlp CPU per sample / weir (RW 1.0)" weir-otlp weir "(target <= 1)"
ratio "weir-ring-otlp CPU per client sample / weir-ring" weir-ring-otlp weir-ring "(target <= 1)"
ratio "prometheus-otlp CPU per sample / weir-otlp" prometheus-otlp weir-otlp ""
ratio "thanos CPU per sample / weir" thanos weir "(target >= 2)"
ratio "prometheus CPU per sample / weir" prometheus weir ""
ratio "weir CPU per sample / vm" weir vm "(target <= 1; 100k series: <= 0.67)"
ratio "weir-otlp CPU per sample / vm-otlp" weir-otlp vm-otlp ""
rss_ratio() { # LABEL A B TARGET: A/B of peak RSS per series
  [ -n "${rss[$2]:-}" ] && [ -n "${rss[$3]:-}" ] || return 0
  awk -v l="$1" -v a="${rss[$2]}" -v b="${rss[$3]}" -v t="$4" 'BEGIN{ printf "%-46s %6.2f  %s\n", l, a/b, t }'
}
rss_ratio "weir peak RSS per series / vm" weir vm "(target <= 1)"
