#!/usr/bin/env bash
# Backfills a running stack (deploy/local/stack.sh) with 2 to 4 days of history, so that the Thanos
# Compactor has something to compact into a 2-day block and to downsample (docs/stack.md, step 3):
# two series, stack_backfill_minutes{series="0"|"1"}, one sample a minute from the start of the last
# 2-day window that ended at least 5 hours ago (the Compactor aligns its 2-day blocks to multiples of
# 48h since 1970, and compacts a window once a newer block exists) until a minute ago. Their value is
# the sample's time in minutes since 1970 (plus 10^7 for series "1"), so any gap or duplicate shows.
#
# The samples go through the router like any remote write (promtool push metrics), as the tenant
# TENANT (default history). A tenant's TSDB takes samples of any age while it is empty and in time
# order afterwards, so the history goes to a tenant of its own: a tenant already receiving current
# samples would refuse older ones (no out-of-order window by default; see docs/stack.md).
# Uses bin/promtool (`make tools`) or WEIR_PROMTOOL. PORT_OFFSET: as for stack.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

promtool=${WEIR_PROMTOOL:-bin/promtool}
if [ ! -x "$promtool" ]; then
  echo "backfill.sh: $promtool is missing: run \`make tools\` first" >&2
  exit 1
fi
tenant=${TENANT:-history}
router="http://127.0.0.1:$((19291 + ${PORT_OFFSET:-0}))"

window=$((48 * 3600))
now=$(date +%s)
start=$(((now - window - 5 * 3600) / window * window))
end=$(((now - 60) / 60 * 60))
file=$(mktemp)
trap 'rm -f "$file"' EXIT
awk -v start="$start" -v end="$end" 'BEGIN {
  print "# TYPE stack_backfill_minutes gauge"
  for (t = start; t <= end; t += 60)
    for (s = 0; s < 2; s++)
      printf "stack_backfill_minutes{series=\"%d\"} %d %d000\n", s, t / 60 + s * 10000000, t
}' > "$file"
"$promtool" push metrics --header="THANOS-TENANT=$tenant" --timeout=2m "$router" "$file"
echo "backfilled tenant $tenant: start=$start end=$end (unix seconds), one sample a minute"
