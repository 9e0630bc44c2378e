#!/usr/bin/env bash
# dashstream and two peers under the same load client, round by round: dashstream, then
# websockets, then the naive eventlet server, ROUNDS times. On a machine whose speed drifts
# during a session (a shared VM host: this one's peers ran at half this morning's speed by
# the afternoon), interleaving makes the drift hit all three alike, which one long
# same_run.sh (dashstream first, then every peer) cannot.
#
#   ../shared/bench/setup.sh                              # once
#   SCENARIO=S2 ROUNDS=3 bash benchmarks/interleaved.sh   # about 4 minutes a round
#   SCENARIO=S3,S4 ROUNDS=2 bash benchmarks/interleaved.sh
#
# Tables: $BENCH_HOME/interleaved-<scenario>-round<N>.md (raw lines beside them).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${BENCH:-$HERE/../shared/bench}"
export BENCH_HOME="${BENCH_HOME:-/tmp/bench}"
SCENARIO="${SCENARIO:-S2}"
ROUNDS="${ROUNDS:-3}"
PY="$BENCH_HOME/venv/bin/python"
S2_RATES="10,20,50,70,100,110,120,130,140,150,200"
tag="${SCENARIO//,/}"
for round in $(seq 1 "$ROUNDS"); do
    out="$BENCH_HOME/interleaved-$tag-round$round"
    rm -rf "$out"
    mkdir -p "$out"
    run() { "$BENCH/run.sh" --out "$out" --runs 1 --scenario "$SCENARIO" --s2-rates "$S2_RATES" "$@"; }
    run --cwd "$HERE" --server "python benchmarks/harness_peer.py" --url ws://127.0.0.1:5105/ws/bench --label dashstream
    run --server "$PY $BENCH/peers/websockets_peer.py" --url ws://127.0.0.1:5102/ --label websockets
    run --server "$PY $BENCH/peers/eventlet_peer.py" --url ws://127.0.0.1:5101/ --label eventlet
    python3 "$BENCH/report.py" --results "$out" --out "$out.md" --labels dashstream,websockets,eventlet \
        --title "$SCENARIO, round $round of $ROUNDS"
    echo "tables: $out.md"
done
