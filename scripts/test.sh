#!/usr/bin/env bash
# The whole test suite: formatting, vet, every test under -race, then each
# fuzz target for a few seconds. This is the README's test command.
#
# Environment:
#   FUZZTIME   how long each fuzz target runs (default 3s; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 ./...

fuzztime=${FUZZTIME:-3s}
if [ "$fuzztime" != "0" ]; then
  echo "== fuzz ($fuzztime each)"
  # Every "func FuzzXxx" in a _test.go file, run one at a time in its package.
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
