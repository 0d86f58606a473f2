#!/usr/bin/env bash
# The whole test suite, over every module of the repository (the library at
# the root, and examples/, which holds the example programs and the tests
# that need a database or browser driver): formatting, vet, tidy go.mod
# files, every test under -race (SQLite, a real PostgreSQL server, a real
# Redis server and a headless Chromium included), then each fuzz target
# for 30,000 inputs.
# This is the README's test command.
#
# Environment:
#   FUZZTIME               how much each fuzz target runs: a count of inputs such as 30000x
#                          (the default) or a duration such as 30s; 0 skips fuzzing. A count is
#                          the default because a duration can end while a worker is mid-input,
#                          which Go reports as a spurious "context deadline exceeded" failure on
#                          a loaded machine (golang/go#75804).
#   KEYSTILE_POSTGRES_DSN  a PostgreSQL server for the tests, such as
#                          postgres://user:pass@localhost:5432/db?sslmode=disable
#                          (the tests create and drop a schema per test). If
#                          empty, this script starts a throwaway server: it
#                          installs Debian's postgresql package when missing
#                          (needs root), creates a cluster in a temp dir, runs
#                          it on a free loopback port and removes it on exit.
#   KEYSTILE_REDIS_ADDR    a Redis server for the tests, such as 127.0.0.1:6379 (the tests use
#                          keys under a prefix of their own and delete them). If empty, this
#                          script starts a throwaway server: it installs Debian's redis-server
#                          package when missing (needs root), runs it on a free loopback port
#                          from 63790 up with no persistence, and stops it on exit.
#   KEYSTILE_AXE_CORE      axe-core's axe.min.js, which the console's browser test injects to
#                          check accessibility. If empty, this script installs the pinned
#                          version below with npm (once, into ~/.cache/keystile) and sets it;
#                          it installs Debian's npm package when npm is missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

# modules lists the directory of every go.mod. The go.work at the root
# puts them in one workspace; each is vetted and tested on its own.
modules=$(git ls-files 'go.mod' '*/go.mod' 2>/dev/null || find . -name go.mod -not -path './.git/*')
modules=$(for m in $modules; do dirname "$m"; done)

echo "== go vet"
for dir in $modules; do
  echo "-- $dir"
  go -C "$dir" vet ./...
done

echo "== go mod tidy"
# Each module's go.mod and go.sum are complete and minimal on their own,
# outside the workspace, as a user or a fresh clone sees them.
for dir in $modules; do
  if ! diff=$(GOWORK=off go -C "$dir" mod tidy -diff); then
    echo "go mod tidy would change $dir:"; echo "$diff"; exit 1
  fi
done

# pg_bin prints the bin directory of the newest installed PostgreSQL server.
pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"; return 0
    fi
  done
  return 1
}

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_dir=""
pg_ctl_as=()
stop_postgres() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    "${pg_ctl_as[@]}" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}

redis_dir=""
redis_pid=""
stop_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
  fi
  if [ -n "$redis_dir" ] && [ -d "$redis_dir" ]; then
    rm -rf "$redis_dir"
  fi
}

# cleanup stops the throwaway servers this script started: the one EXIT
# trap, set before any of them starts.
cleanup() {
  stop_postgres
  stop_redis
}
trap cleanup EXIT

start_postgres() {
  local bin port as=()
  if ! bin=$(pg_bin); then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL is not installed and this is not root: install it (apt-get install postgresql)" \
        "or set KEYSTILE_POSTGRES_DSN" >&2
      exit 1
    fi
    echo "-- installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
    # The package may have started its own cluster; this script does not use it.
    pg_ctlcluster --force "$(basename "$(dirname "$bin")")" main stop >/dev/null 2>&1 || true
  fi
  pg_dir=$(mktemp -d /tmp/keystile-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    # initdb and postgres refuse to run as root.
    chown postgres: "$pg_dir"
    as=(runuser -u postgres --)
  fi
  pg_ctl_as=("${as[@]}" "$bin/pg_ctl")
  "${as[@]}" "$bin/initdb" -D "$pg_dir/data" -U keystile --auth=trust -E UTF8 --no-locale >"$pg_dir/initdb.log" 2>&1 ||
    { cat "$pg_dir/initdb.log" >&2; exit 1; }
  port=54329
  while ! port_free "$port"; do port=$((port + 1)); done
  # A throwaway server: durability off for speed, room for the tests' pools.
  "${pg_ctl_as[@]}" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >/dev/null || { cat "$pg_dir/server.log" >&2; exit 1; }
  export KEYSTILE_POSTGRES_DSN="postgres://keystile@127.0.0.1:$port/postgres?sslmode=disable"
  echo "-- PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($pg_dir)"
}

echo "== PostgreSQL"
if [ -n "${KEYSTILE_POSTGRES_DSN:-}" ]; then
  echo "-- using KEYSTILE_POSTGRES_DSN"
else
  start_postgres
fi

start_redis() {
  local port i
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "Redis is not installed and this is not root: install it (apt-get install redis-server)" \
        "or set KEYSTILE_REDIS_ADDR" >&2
      exit 1
    fi
    echo "-- installing Redis from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt_get=(apt-get -o DPkg::Lock::Timeout=300)
    if ! "${apt_get[@]}" install -y -qq redis-server >/dev/null 2>&1; then
      "${apt_get[@]}" update -qq
      "${apt_get[@]}" install -y -qq redis-server >/dev/null
    fi
    # The package may have started its own server; this script does not use it.
    invoke-rc.d redis-server stop >/dev/null 2>&1 || true
  fi
  redis_dir=$(mktemp -d /tmp/keystile-redis.XXXXXX)
  port=63790
  while ! port_free "$port"; do port=$((port + 1)); done
  # A throwaway server: loopback only, nothing written to disk.
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$redis_dir" --logfile "$redis_dir/server.log" --daemonize no &
  redis_pid=$!
  for i in $(seq 100); do
    if ! port_free "$port"; then break; fi
    if ! kill -0 "$redis_pid" 2>/dev/null || [ "$i" = 100 ]; then
      echo "redis-server did not start:" >&2; cat "$redis_dir/server.log" >&2; exit 1
    fi
    sleep 0.1
  done
  export KEYSTILE_REDIS_ADDR="127.0.0.1:$port"
  echo "-- $(redis-server --version | awk '{print $1, $2, $3}') on $KEYSTILE_REDIS_ADDR ($redis_dir)"
}

echo "== Redis"
if [ -n "${KEYSTILE_REDIS_ADDR:-}" ]; then
  echo "-- using KEYSTILE_REDIS_ADDR"
else
  start_redis
fi

echo "== Chromium"
# The browser end-to-end test (examples/browser) drives Debian's chromium; it
# fails without it when CI=true, and is skipped otherwise.
if [ -x /usr/bin/chromium ]; then
  echo "-- $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
elif [ "$(id -u)" = 0 ]; then
  echo "-- installing chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt_get=(apt-get -o DPkg::Lock::Timeout=300)
  if ! "${apt_get[@]}" install -y -qq chromium >/dev/null 2>&1; then
    "${apt_get[@]}" update -qq
    "${apt_get[@]}" install -y -qq chromium >/dev/null
  fi
  echo "-- $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
else
  echo "-- /usr/bin/chromium is missing and this is not root: the browser test will be skipped" \
    "(install it with apt-get install chromium)"
fi

# axe_core_version is the axe-core release the console's accessibility test
# runs (examples/console checks that it is the one injected).
axe_core_version=4.14.1

echo "== axe-core"
if [ -n "${KEYSTILE_AXE_CORE:-}" ]; then
  echo "-- using KEYSTILE_AXE_CORE"
else
  axe_dir="${XDG_CACHE_HOME:-$HOME/.cache}/keystile/axe-core-$axe_core_version"
  if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      if [ "$(id -u)" != 0 ]; then
        echo "npm is not installed and this is not root: install it (apt-get install npm)" \
          "or set KEYSTILE_AXE_CORE" >&2
        exit 1
      fi
      echo "-- installing npm from Debian's packages"
      export DEBIAN_FRONTEND=noninteractive
      apt_get=(apt-get -o DPkg::Lock::Timeout=300)
      if ! "${apt_get[@]}" install -y -qq npm >/dev/null 2>&1; then
        "${apt_get[@]}" update -qq
        "${apt_get[@]}" install -y -qq npm >/dev/null
      fi
    fi
    echo "-- installing axe-core@$axe_core_version with npm"
    mkdir -p "$axe_dir"
    npm install --prefix "$axe_dir" --no-audit --no-fund --silent "axe-core@$axe_core_version"
  fi
  export KEYSTILE_AXE_CORE="$axe_dir/node_modules/axe-core/axe.min.js"
  echo "-- axe-core $axe_core_version ($KEYSTILE_AXE_CORE)"
fi

echo "== go test -race"
for dir in $modules; do
  echo "-- $dir"
  go -C "$dir" test -race -count=1 ./...
done

fuzztime=${FUZZTIME:-30000x}
if [ "$fuzztime" != "0" ]; then
  echo "== fuzz ($fuzztime each)"
  # Every "func FuzzXxx" in a _test.go file of any module, run one at a time
  # in its package (the workspace resolves every module's packages from here).
  files=$(grep -rl --include='*_test.go' '^func Fuzz' . || true)
  for file in $files; do
    pkg=./$(dirname "${file#./}")
    for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
      echo "-- $target ($pkg)"
      go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
    done
  done
fi
echo "== all tests passed"
