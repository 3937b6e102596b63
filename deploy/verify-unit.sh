#!/usr/bin/env bash
# Checks deploy/rollcall.service with systemd-analyze (when available) against the freshly built binary:
# the unit's syntax, directives and sandboxing options, without installing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not available; unit not verified"
  exit 0
fi
binary="$(pwd)/target/debug/rollcall"
[ -x "$binary" ] || cargo build --quiet --bin rollcall
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/rollcall|$binary|" deploy/rollcall.service > "$dir/rollcall.service"
out=$(systemd-analyze verify "$dir/rollcall.service" 2>&1 || true)
if [ -n "$out" ]; then
  echo "$out"
  echo "deploy/rollcall.service: systemd-analyze verify reported problems" >&2
  exit 1
fi
echo "deploy/rollcall.service: systemd-analyze verify clean"
