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
# A third mode, fields alone, compares /bare with /bare-fields, the bare
# handler writing the response fields that the middleware adds to an
# admitted request (Vary, and with LIMITS the RateLimit fields): what they
# cost with no key checked (no target).
#
# Machines here are noisy (the bare handler alone varies by a third from one
# run to the next), so each mode is measured as PAIRS pairs of short runs,
# bare and protected back to back, in alternating order (bare first, then
# protected first), and the script reports every pair's ratio
# protected/bare and the median of those ratios, besides the median
# requests/s, p50/p99 latency and server CPU time per request (read from
# the server's /cpu route around each run, steadier than throughput on a
# shared machine) of each route. Targets (DESIGN.md): a
# median of at least 95 % of the bare handler's throughput with one key,
# 90 % with 10,000 keys. Not part of the default test run.
#
# The server creates the KEYS keys with a light hasher, then sends each
# through the middleware and waits until it has upgraded their hashes to
# DefaultParams: one argon2 run of about 25 ms per key, a few minutes for
# 10,000 keys on two cores. Then it sends every key again over a minute, so
# that, as in a server that has been running a while, each key's cache
# lifetime ends at its own time: the runs measure cached keys, and each
# key's one store read per cache lifetime, not all 10,000 reads at once.
# The pairs of a mode span a minute or more (PAIRS x 2 x DURATION), a
# whole cache lifetime, so they include every key's re-validation.
#
# Environment:
#   DURATION     how long each wrk run lasts (default 3s)
#   PAIRS        pairs of runs per mode (default 10)
#   THREADS      wrk threads (default 2)
#   CONNECTIONS  wrk connections (default 64)
#   KEYS         distinct keys of the many-keys mode (default 10000; 0 skips
#                the mode)
#   LIMITS       rate: every key has a rate limit that the load never reaches
#                (examples/loadtest -limits), so that every request goes
#                through the limiter; quota: a quota too, spent from leases
#                (default: no limits; usage is counted either way)
#   CPUPROFILE   write the server's CPU profile of the measured runs to this
#                file (go tool pprof FILE)
#   LOAD_STRICT  1: exit with status 1 when a median ratio is below its
#                target (default: report only)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-3s}
pairs=${PAIRS:-10}
[ "$pairs" -ge 1 ] || { echo "PAIRS must be at least 1" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is not installed: apt-get install curl" >&2; exit 1; }
threads=${THREADS:-2}
connections=${CONNECTIONS:-64}
keys=${KEYS:-10000}

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
limits_flag=()
[ -n "${LIMITS:-}" ] && limits_flag=(-limits "$LIMITS")
"$work/loadtest" -addr 127.0.0.1:0 -keys "$keys" "${limits_flag[@]}" ${CPUPROFILE:+-cpuprofile "$CPUPROFILE"} >"$work/server.out" 2>"$work/server.err" &
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

# cpu prints the CPU time the server has used, in microseconds (background
# work such as feed polling and these reads included: the same for both
# routes).
cpu() { curl -fsS "$url/cpu"; }

run() { # run NAME URL [wrk args...] [-- script args]
  local name=$1 target=$2; shift 2
  local args=() script=() before after
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && script=("$@")
  before=$(cpu)
  wrk -t "$threads" -c "$connections" -d "$duration" --latency "${args[@]}" "$target" "${script[@]}" >"$work/$name.txt"
  after=$(cpu) # on its own line, so that set -e stops on a failed read
  echo "$((after - before))" >"$work/$name.cpu"
  if grep -q -e 'Non-2xx' -e 'Socket errors' "$work/$name.txt"; then
    echo "-- $name: wrk reports errors:" >&2; cat "$work/$name.txt" >&2; exit 1
  fi
}

# metric NAME prints requests/s, p50 and p99 in milliseconds, and the
# server's CPU time per request in microseconds, of run NAME.
metric() {
  awk -v cpu="$(cat "$work/$1.cpu")" '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    $2 == "requests" && $3 == "in" { n = $1 }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f %.2f\n", rps, p50, p99, cpu / n }
  ' "$work/$1.txt"
}

# median prints the median of the numbers on stdin, one per line.
median() {
  sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# column N FILE prints the median of column N of FILE.
column() { awk -v n="$1" '{ print $n }' "$2" | median; }

below=0
against=/protected # the route each pair compares with /bare
# pairs MODE LABEL TARGET URL-ARGS... measures PAIRS pairs of MODE (the
# bare and protected runs get the same wrk arguments), prints each pair
# and the medians, and notes a median ratio below TARGET percent (none
# for an empty TARGET).
pairs() {
  local mode=$1 label=$2 target=$3; shift 3
  : >"$work/$mode.pairs"
  printf '\n%s: %s pairs of %s runs (requests/s, p50 ms, p99 ms, server CPU us/request)\n' "$label" "$pairs" "$duration"
  printf '%6s %35s %35s %7s\n' pair /bare "$against" ratio
  for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) = 1 ]; then
      run "$mode-bare" "$url/bare" "$@"
      run "$mode-protected" "$url$against" "$@"
    else
      run "$mode-protected" "$url$against" "$@"
      run "$mode-bare" "$url/bare" "$@"
    fi
    echo "$(metric "$mode-bare") $(metric "$mode-protected")" >>"$work/$mode.pairs"
    tail -n 1 "$work/$mode.pairs" | awk -v i="$i" '{ printf "%6d %8d %8.3f %8.3f %8.2f %8d %8.3f %8.3f %8.2f %6.1f %%\n", i, $1, $2, $3, $4, $5, $6, $7, $8, 100 * $5 / $1 }'
  done
  local ratio cpu_bare cpu_protected
  ratio=$(awk '{ print 100 * $5 / $1 }' "$work/$mode.pairs" | median)
  cpu_bare=$(column 4 "$work/$mode.pairs")
  cpu_protected=$(column 8 "$work/$mode.pairs")
  printf '%6s %8.0f %8.3f %8.3f %8.2f %8.0f %8.3f %8.3f %8.2f %6.1f %%  (medians%s)\n' median \
    "$(column 1 "$work/$mode.pairs")" "$(column 2 "$work/$mode.pairs")" "$(column 3 "$work/$mode.pairs")" "$cpu_bare" \
    "$(column 5 "$work/$mode.pairs")" "$(column 6 "$work/$mode.pairs")" "$(column 7 "$work/$mode.pairs")" "$cpu_protected" \
    "$ratio" "${target:+; target >= $target %}"
  awk -v b="$cpu_bare" -v p="$cpu_protected" -v route="${against#/}" 'BEGIN { printf "%6s server CPU per request: %s costs %.2f us more than bare (%.1f %% more)\n", "", route, p - b, 100 * (p - b) / b }'
  if [ -n "$target" ] && awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r < t) }'; then
    echo "$label: median ratio below the $target % target" >&2
    below=1
  fi
}

# The many-keys mode comes first, right after the warm-up that spread the
# keys' cache lifetimes: a minute of one-key runs first would let every
# key's entry expire, and the many-keys runs would start with all of their
# re-validations at once, which a server in steady use does not see.
if [ -n "$keys_file" ]; then
  pairs many "$keys keys" 90 "${many[@]}" -- "$keys_file"
fi
pairs one "1 key" 95 -H "X-API-Key: $key"
# What the response fields cost on their own: the bare handler against
# the bare handler that writes the fields the middleware adds (those of a
# key far below its limit), with no key checked.
against=/bare-fields pairs fields "Response fields alone" "" -H "X-API-Key: $key"

# The server's counters: every miss after the warm-up is a key loaded again.
kill -TERM "$server_pid" && wait "$server_pid" || true
server_pid=""
echo; tail -n 1 "$work/server.err" | sed 's/^/-- server /'

if [ "$below" = 1 ] && [ "${LOAD_STRICT:-0}" = 1 ]; then
  exit 1
fi
exit 0
