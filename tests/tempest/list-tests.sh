#!/usr/bin/env bash
# Lists the Tempest 33 test ids (as `tempest run --list-tests` prints them, with their
# "[id-...,smoke]" attributes) whose id matches REGEX, sorted; with no REGEX, all of them.
# Uses a throw-away workspace (removed at exit); needs no cloud and no network. About 12 s.
# Usage: tests/tempest/list-tests.sh [REGEX]      e.g. list-tests.sh '^tempest\.api\.identity\.v3\.'
set -euo pipefail
REGEX=${1:-.}
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH
export PYTHON=/usr/bin/python3
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
WS=$(mktemp -d "${TMPDIR:-/tmp}/tempest-list.XXXXXX")
trap 'rm -rf "$WS"' EXIT
cd "$WS"   # tempest init writes a tempest.log into the current directory
tempest init --workspace-path "$WS/.workspace.yaml" --name "list-$$" "$WS/ws" >/dev/null
cd "$WS/ws"
tempest run --workspace-path "$WS/.workspace.yaml" --list-tests > "$WS/all.txt" 2> "$WS/err.txt" || {
  cat "$WS/err.txt" >&2; echo "list-tests: tempest run --list-tests failed" >&2; exit 1; }
grep '^tempest\.' "$WS/all.txt" | grep -E -- "$REGEX" | sort || true
