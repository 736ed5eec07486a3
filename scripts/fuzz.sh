#!/usr/bin/env bash
# Runs every fuzz target of the module for a while (`make fuzz`, part of `make test`).
#
#   scripts/fuzz.sh [FUZZTIME]     (default 10s; a Go -fuzztime value)
#
# A target fails when the fuzzer found an input that fails it: Go writes that input to
# <package>/testdata/fuzz/<target>/, prints it, and the run is red. Go 1.26's fuzz coordinator has a
# known race at the end of a duration -fuzztime (go.dev/issue/75804): when the deadline fires while a
# worker is still busy, the target "fails" with a bare "context deadline exceeded" and no input. That
# happens on a loaded two-core machine and says nothing about our code, so such a run is named a flake
# (loudly, with its output) and tried once more; a second identical flake is reported and not failed. Any
# other failure, or any failure that left a new input in testdata, fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime=${1:-10s}
GO=${GO:-go}
failed=() flaked=()

# corpus_files lists the committed and found inputs of one target, to see whether a run added one.
corpus_files() { find "$1/testdata/fuzz/$2" -type f 2>/dev/null | sort; }

# fuzz_once runs one target; it prints "pass", "flake" or "fail" last.
fuzz_once() {
  local pkg=$1 dir=$2 target=$3 out before after rc=0
  out=$(mktemp)
  before=$(corpus_files "$dir" "$target")
  "$GO" test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >"$out" 2>&1 || rc=$?
  after=$(corpus_files "$dir" "$target")
  cat "$out" >&2
  if [ "$rc" -eq 0 ]; then
    echo pass
  elif [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" &&
    ! grep -qE 'Failing input written|panic:|fuzzing process hung' "$out"; then
    echo flake
  else
    echo fail
  fi
  rm -f "$out"
}

while read -r pkg dir; do
  for target in $("$GO" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    result=$(fuzz_once "$pkg" "$dir" "$target")
    if [ "$result" = flake ]; then
      echo "FUZZ FLAKE: $pkg $target ended with a bare 'context deadline exceeded' and no new input" \
        "(go.dev/issue/75804, Go's coordinator, not a finding); running it once more" >&2
      result=$(fuzz_once "$pkg" "$dir" "$target")
    fi
    case "$result" in
      pass) ;;
      flake) flaked+=("$pkg $target") ;;
      *) failed+=("$pkg $target") ;;
    esac
  done
done < <("$GO" list -f '{{.ImportPath}} {{.Dir}}' ./...)

for f in "${flaked[@]}"; do echo "FUZZ FLAKE twice, not a finding (go.dev/issue/75804): $f" >&2; done
if [ "${#failed[@]}" -gt 0 ]; then
  for f in "${failed[@]}"; do echo "FUZZ FAILED: $f (a failing input is in its testdata/fuzz, see above)" >&2; done
  exit 1
fi
echo "fuzz: every target passed (${#flaked[@]} flaked on Go's coordinator race)"
