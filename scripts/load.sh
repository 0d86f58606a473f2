#!/usr/bin/env bash
# Load benchmark over loopback: starts examples/loadtest (one server, a SQLite
# store, DefaultParams) and drives it with wrk, first through the bare
# handler (/bare), then through the keystile middleware with a cached key
# (/protected), at the same fixed concurrency for the same time. Prints
# requests/s and p50/p99 latency of both and the ratio protected/bare.
# Target: the middleware keeps at least 90 % of the bare handler's
# throughput. Not part of the default test run.
#
# Environment:
#   DURATION     how long each wrk run lasts (default 10s)
#   THREADS      wrk threads (default 2)
#   CONNECTIONS  wrk connections (default 64)
#   LOAD_STRICT  1: exit with status 1 when the ratio is below 90 %
#                (default: report only; machines are noisy)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-10s}
threads=${THREADS:-2}
connections=${CONNECTIONS:-64}

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
go build -o "$work/loadtest" ./examples/loadtest
"$work/loadtest" -addr 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 300); do
  grep -q '^key ' "$work/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
  sleep 0.1
done
url=$(awk '$1 == "addr" {print $2}' "$work/server.out")
key=$(awk '$1 == "key" {print $2}' "$work/server.out")
[ -n "$url" ] && [ -n "$key" ] || { echo "the server printed no address or key" >&2; cat "$work/server.err" >&2; exit 1; }
echo "-- server on $url; $duration per run, $threads threads, $connections connections"

# Warm up: the first request verifies the key (one argon2 run) and caches
# it; the short runs also warm the runtime and the connections.
wrk -t "$threads" -c "$connections" -d 2s "$url/bare" >/dev/null
wrk -t "$threads" -c "$connections" -d 2s -H "X-API-Key: $key" "$url/protected" >"$work/warm.txt"
if grep -q 'Non-2xx' "$work/warm.txt"; then
  echo "warm-up of /protected got errors:" >&2; cat "$work/warm.txt" >&2; exit 1
fi

run() { # run NAME URL [wrk args...]
  local name=$1 target=$2; shift 2
  wrk -t "$threads" -c "$connections" -d "$duration" --latency "$@" "$target" >"$work/$name.txt"
  if grep -q -e 'Non-2xx' -e 'Socket errors' "$work/$name.txt"; then
    echo "-- $name: wrk reports errors:" >&2; cat "$work/$name.txt" >&2; exit 1
  fi
}
run bare "$url/bare"
run protected "$url/protected" -H "X-API-Key: $key"

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
read -r bare_rps bare_p50 bare_p99 <<<"$(metric "$work/bare.txt")"
read -r prot_rps prot_p50 prot_p99 <<<"$(metric "$work/protected.txt")"
ratio=$(awk -v p="$prot_rps" -v b="$bare_rps" 'BEGIN { printf "%.1f", 100 * p / b }')

printf '\n%-11s %12s %10s %10s\n' route 'requests/s' 'p50 ms' 'p99 ms'
printf '%-11s %12s %10s %10s\n' /bare "$bare_rps" "$bare_p50" "$bare_p99"
printf '%-11s %12s %10s %10s\n' /protected "$prot_rps" "$prot_p50" "$prot_p99"
echo "ratio protected/bare: $ratio % (target >= 90 %)"

if awk -v r="$ratio" 'BEGIN { exit !(r < 90) }'; then
  echo "below the 90 % target" >&2
  [ "${LOAD_STRICT:-0}" = 1 ] && exit 1
fi
exit 0
