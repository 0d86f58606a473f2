#!/usr/bin/env bash
# Load benchmark over loopback: starts examples/loadtest (one server, a SQLite
# store; the middleware verifies with DefaultParams) and drives it with wrk in
# two modes, each against the bare handler (/bare) and the same handler
# behind the keystile middleware (/protected), at the same fixed concurrency
# for the same time:
#
#   one key    every request carries the same server key;
#   many keys  requests spread over KEYS distinct server keys (10,000), one
#              after the other (scripts/load.lua); /bare gets the same
#              requests, so that wrk does the same work in both runs.
#
# Prints requests/s and p50/p99 latency of every run and the ratio
# protected/bare of each mode. Targets (DESIGN.md): at least 95 % of the
# bare handler's throughput with one key, 90 % with 10,000 keys. Not part of
# the default test run.
#
# The server creates the KEYS keys with a light hasher, then sends each
# through the middleware and waits until it has upgraded their hashes to
# DefaultParams: one argon2 run of about 25 ms per key, a few minutes for
# 10,000 keys on two cores. Then it sends every key again over a minute, so
# that, as in a server that has been running a while, each key's cache
# lifetime ends at its own time: the runs measure cached keys, and each
# key's one store read per minute (CacheTTL), not all 10,000 reads at once.
#
# Environment:
#   DURATION     how long each wrk run lasts (default 10s)
#   THREADS      wrk threads (default 2)
#   CONNECTIONS  wrk connections (default 64)
#   KEYS         distinct keys of the many-keys mode (default 10000; 0 skips
#                the mode)
#   RUNS         measured rounds of both modes against one server (default 1)
#   CPUPROFILE   write the server's CPU profile of the measured runs to this
#                file (go tool pprof FILE)
#   LOAD_STRICT  1: exit with status 1 when a ratio is below its target
#                (default: report only; machines are noisy)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-10s}
threads=${THREADS:-2}
connections=${CONNECTIONS:-64}
keys=${KEYS:-10000}
runs=${RUNS:-1}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "wrk is not installed and this is not root: apt-get install wrk" >&2
    exit 1
  fi
  echo "-- installing wrk from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi

work=$(mktemp -d /tmp/keystile-load.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "-- building examples/loadtest"
go -C examples build -o "$work/loadtest" ./loadtest
"$work/loadtest" -addr 127.0.0.1:0 -keys "$keys" ${CPUPROFILE:+-cpuprofile "$CPUPROFILE"} >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
echo "-- creating and warming up $keys keys (their hashes are upgraded to DefaultParams)"
for _ in $(seq 1 12000); do # 20 minutes
  grep -q '^ready' "$work/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
  sleep 0.1
done
grep -q '^ready' "$work/server.out" || { echo "the server is not ready" >&2; cat "$work/server.err" >&2; exit 1; }
sed 's/^/   /' "$work/server.err"
url=$(awk '$1 == "addr" {print $2}' "$work/server.out")
key=$(awk '$1 == "key" {print $2}' "$work/server.out")
keys_file=$(awk '$1 == "keys" {print $2}' "$work/server.out")
[ -n "$url" ] && [ -n "$key" ] || { echo "the server printed no address or key" >&2; cat "$work/server.err" >&2; exit 1; }
echo "-- server on $url; $duration per run, $threads threads, $connections connections"

many=(-s scripts/load.lua)
# Warm up: the first request with the one key verifies it (one argon2 run)
# and caches it; the short runs also warm the runtime and the connections.
wrk -t "$threads" -c "$connections" -d 2s "$url/bare" >/dev/null
wrk -t "$threads" -c "$connections" -d 2s -H "X-API-Key: $key" "$url/protected" >"$work/warm.txt"
if [ -n "$keys_file" ]; then
  wrk -t "$threads" -c "$connections" -d 2s "${many[@]}" "$url/protected" -- "$keys_file" >>"$work/warm.txt"
fi
if grep -q 'Non-2xx' "$work/warm.txt"; then
  echo "warm-up of /protected got errors:" >&2; cat "$work/warm.txt" >&2; exit 1
fi

run() { # run NAME URL [wrk args...] [-- script args]
  local name=$1 target=$2; shift 2
  local args=() script=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && script=("$@")
  wrk -t "$threads" -c "$connections" -d "$duration" --latency "${args[@]}" "$target" "${script[@]}" >"$work/$name.txt"
  if grep -q -e 'Non-2xx' -e 'Socket errors' "$work/$name.txt"; then
    echo "-- $name: wrk reports errors:" >&2; cat "$work/$name.txt" >&2; exit 1
  fi
}

# metric FILE prints requests/s, p50 and p99 in milliseconds.
metric() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }
  ' "$1"
}

below=0
# report MODE LABEL TARGET prints the bare and protected runs of MODE and
# their ratio, and notes a ratio below TARGET percent.
report() {
  local mode=$1 label=$2 target=$3 p50 p99 bare_rps prot_rps ratio
  read -r bare_rps p50 p99 <<<"$(metric "$work/$mode-bare.txt")"
  printf '%-12s %-11s %12s %10s %10s\n' "$label" /bare "$bare_rps" "$p50" "$p99"
  read -r prot_rps p50 p99 <<<"$(metric "$work/$mode-protected.txt")"
  printf '%-12s %-11s %12s %10s %10s\n' "$label" /protected "$prot_rps" "$p50" "$p99"
  ratio=$(awk -v p="$prot_rps" -v b="$bare_rps" 'BEGIN { printf "%.1f", 100 * p / b }')
  printf '%-12s ratio protected/bare: %s %% (target >= %s %%)\n' "$label" "$ratio" "$target"
  if awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r < t) }'; then
    echo "$label: below the $target % target" >&2
    below=1
  fi
}

for round in $(seq 1 "$runs"); do
  # Each mode's bare run comes right before its protected run.
  run one-bare "$url/bare"
  run one-protected "$url/protected" -H "X-API-Key: $key"
  if [ -n "$keys_file" ]; then
    run many-bare "$url/bare" "${many[@]}" -- "$keys_file"
    run many-protected "$url/protected" "${many[@]}" -- "$keys_file"
  fi
  if [ "$runs" -gt 1 ]; then
    echo -e "\n-- round $round of $runs"
  fi
  printf '\n%-12s %-11s %12s %10s %10s\n' mode route 'requests/s' 'p50 ms' 'p99 ms'
  report one "1 key" 95
  if [ -n "$keys_file" ]; then
    report many "$keys keys" 90
  fi
done

# The server's counters: every miss after the warm-up is a key loaded again.
kill -TERM "$server_pid" && wait "$server_pid" || true
server_pid=""
echo; tail -n 1 "$work/server.err" | sed 's/^/-- server /'

if [ "$below" = 1 ] && [ "${LOAD_STRICT:-0}" = 1 ]; then
  exit 1
fi
exit 0
