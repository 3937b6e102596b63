#!/usr/bin/env bash
# The benchmark in one command: builds release binaries, then measures the PostgreSQL ceiling, the
# sandbox alone and `rollcall collect` at each size, and prints one table (see bench/RESULTS.md).
#   bench/run.sh               # 100k and 1M host-report rows
#   bench/run.sh 200000        # any sizes
#   bench/run.sh pacing        # the pacing against Zoom's Pro limits (~2.5 minutes; bench/src/pacing.rs)
#   bench/run.sh latency       # the pacing with 300 ms and 1 s replies, Pro and Business (~7 minutes)
#   bench/run.sh latency pro-1000 business-1000   # some of them (pro-300 pro-1000 business-300 business-1000)
#   bench/run.sh replicas      # three replicas on one Pro account, 300 ms replies (~2 minutes)
#   bench/run.sh scale         # RSS and wall time for 10, 100, 300 Zoom accounts (bench/src/scale.rs)
#   bench/run.sh steady        # run 2 a day after run 1: requests per stream against the minimum (steady.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --release --quiet -p rollcall -p rollcall-bench
exec target/release/rollcall-bench "$@"
