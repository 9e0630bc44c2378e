#!/usr/bin/env bash
# The same-run comparison behind BENCHMARKS.md and the README's figures: dashstream and the
# reference peers of ../shared/bench under the same load client, one after the other, on a
# quiet machine (run nothing else meanwhile; the harness waits for quiet and marks noise).
#
#   ../shared/bench/setup.sh            # once
#   bash benchmarks/same_run.sh         # about 40 minutes; tables in $BENCH_HOME/same-run.md
#
# RUNS (default 2) repeats every measurement; PEERS (default all four) picks the peers.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${BENCH:-$HERE/../shared/bench}"
export BENCH_HOME="${BENCH_HOME:-/tmp/bench}"
OUT="${OUT:-$BENCH_HOME/same-run}"
RUNS="${RUNS:-2}"
# The peers' default ladder stops at 150 for most servers; finer steps around 100-150 say where
# each one tops out instead of all tying at 100.
S2_RATES="10,20,50,70,100,110,120,130,140,150,200"
LAZY_RATES="50,100,150,200,300,500,1000"
mkdir -p "$OUT"

run() { "$BENCH/run.sh" --out "$OUT" --runs "$RUNS" "$@"; }
dash() { run --cwd "$HERE" --url ws://127.0.0.1:5105/ws/bench "$@"; }

rm -f "$OUT"/dashstream*.jsonl
dash --server "python benchmarks/harness_peer.py" --label dashstream --scenario S1,S2,S3,S4 --s2-rates "$S2_RATES"
dash --server "python benchmarks/harness_peer.py" --label dashstream+lazy-client --scenario S2 \
    --poll-us 10000 --s2-rates "$LAZY_RATES"
# Nagle left on (TCP_NODELAY not set), with both readers, for the README's choice.
dash --server "python benchmarks/harness_peer.py --entry benchmarks/nagle_on_server.py" --label dashstream-nagle \
    --scenario S2 --s2-rates "$S2_RATES"
dash --server "python benchmarks/harness_peer.py --entry benchmarks/nagle_on_server.py" \
    --label dashstream-nagle+lazy-client --scenario S2 --poll-us 10000 --s2-rates "$LAZY_RATES"

# The peers: S1, S3, S4 and the lazy-reader S2 ladder as run_peers.sh runs them...
PEERS="${PEERS-eventlet websockets node-ws c-epoll}"
PEERS="$PEERS" SCENARIOS=S1,S3,S4 LAZY=1 CROSSCHECK=0 OUT="$OUT" REPORT="$OUT/peers.md" \
    "$BENCH/run_peers.sh" --runs "$RUNS"
# ...and S2 with the same finer ladder as dashstream (run_peers.sh would pass one ladder to
# its lazy runs too).
PY="$BENCH_HOME/venv/bin/python"
export NODE_PATH="${NODE_PATH:-$BENCH_HOME/node/node_modules}"
for peer in $PEERS; do
    case "$peer" in
        eventlet)   port=5101; cmd="$PY $BENCH/peers/eventlet_peer.py" ;;
        websockets) port=5102; cmd="$PY $BENCH/peers/websockets_peer.py" ;;
        node-ws)    port=5103; cmd="node $BENCH/peers/ws_peer.js" ;;
        c-epoll)    port=5104; cmd="$BENCH_HOME/bin/cpush" ;;
    esac
    run --server "$cmd" --url "ws://127.0.0.1:$port/" --label "$peer" --scenario S2 --s2-rates "$S2_RATES"
done

labels="dashstream,eventlet,websockets,node-ws,c-epoll"
for suffix in lazy-client; do
    for peer in dashstream eventlet websockets node-ws c-epoll; do labels="$labels,$peer+$suffix"; done
done
labels="$labels,dashstream-nagle,dashstream-nagle+lazy-client"
python3 "$BENCH/report.py" --results "$OUT" --out "$BENCH_HOME/same-run.md" --labels "$labels" \
    --title "dashstream and the reference peers, same run"
echo "tables: $BENCH_HOME/same-run.md"
