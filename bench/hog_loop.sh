#!/usr/bin/env bash
# The whole test suite N times in a row (default 10) under a CPU hog: one busy loop per core, started here and
# stopped here (also on Ctrl-C). Prints pass/fail per run and "K of N green"; exits 0 only when every run passed.
# A failing run's log is kept and its path printed.
#
#   bench/hog_loop.sh          # 10 runs
#   bench/hog_loop.sh 3        # 3 runs
#   PYTHON=/path/to/python bench/hog_loop.sh   # another interpreter (default: .venv/bin/python of this checkout)
set -u
runs=${1:-10}
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
logs=$(mktemp -d "${TMPDIR:-/tmp}/hog_loop.XXXXXX")
cores=$(nproc)

hogs=()
stop_hogs() {
  if [ ${#hogs[@]} -gt 0 ]; then kill "${hogs[@]}" 2>/dev/null; wait "${hogs[@]}" 2>/dev/null; fi
  hogs=()
}
trap 'stop_hogs; exit 130' INT TERM
trap stop_hogs EXIT
for _ in $(seq "$cores"); do
  ( while :; do :; done ) &
  hogs+=($!)
done
echo "hog_loop: $runs run(s) of the whole suite under $cores busy loop(s) (pids ${hogs[*]}); logs in $logs"

green=0
for run in $(seq "$runs"); do
  started=$(date +%s)
  log="$logs/run-$run.log"
  if "$python" -m pytest -q -x -p no:cacheprovider >"$log" 2>&1; then
    result="pass"
  else
    result="FAIL (log: $log)"
  fi
  summary=$(grep -E '[0-9]+ (passed|failed|errors?)( |,|$)' "$log" | tail -1 | tr -d '=')
  if [ "$result" = pass ]; then green=$((green + 1)); rm -f "$log"; fi
  echo "run $run/$runs: $result in $(( $(date +%s) - started )) s${summary:+ (${summary# })}"
done
stop_hogs
echo "$green of $runs green"
[ "$green" = "$runs" ]
