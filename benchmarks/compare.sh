#!/usr/bin/env bash
# dashstream beside the reference servers (or beside another revision of itself) under the
# project's own load harness (benchmarks/harness/), on the machine this runs on. One command
# from a clone; README "Development" and BENCHMARKS.md say how to read what it writes.
#
#   bash benchmarks/compare.sh                  # S1-S4, 3 interleaved rounds (about 45 minutes)
#   bash benchmarks/compare.sh --quick          # a few hundred connections, short windows (< 3 min)
#   bash benchmarks/compare.sh --out DIR        # where report.md, the PNG plots and raw/ go
#   bash benchmarks/compare.sh --against REV    # this checkout against REV (a temporary git worktree);
#                                               # with --peers too, the peers run beside both
#
# Other options: --rounds N, --peers "websockets eventlet node-ws c-epoll" (and eventlet-floor,
# a yardstick), --scenarios S1,S2,S3,S4,
# --python PATH (the interpreter every Python server runs on, default python3: the one you
# deploy on; a source build without --enable-optimizations, pyenv's default, runs them about
# a tenth slower than a distribution's or the Docker image's: BENCHMARKS.md, "Which Python"),
# --home DIR (the scratch folder, default benchmarks/.bench: venv, node_modules, built binaries).
#
# The method rules learned on the development machine are built in:
# * the server is pinned to one core and the load client (with the harness) to another;
# * S2 runs in a harness call of its own (a preceding S1 of 10,000 connections in the same call
#   depressed every server's S2 by 30-70 %), and before S1, S3 and S4 in each round;
# * servers are interleaved round by round, in a rotated order each round, so the drift of a
#   shared machine hits all of them alike; the report gives ratios taken in the same round;
# * the S2 ladder's first failing step is reported with what it delivered, and the load
#   client's CPU in every row (it must stay well under its core for the row to mean anything).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="$REPO/benchmarks/harness"

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
say() { echo "compare.sh: $*" >&2; }

quick=0
out=""
against=""
rounds=""
peers="websockets eventlet node-ws c-epoll"
peers_given=0
scenarios="S1,S2,S3,S4"
python="python3"
export BENCH_HOME="${BENCH_HOME:-$REPO/benchmarks/.bench}"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --out) out="${2:?--out needs a folder}"; shift ;;
        --against) against="${2:?--against needs a revision}"; shift ;;
        --rounds) rounds="${2:?--rounds needs a number}"; shift ;;
        --peers) peers="${2-}"; peers_given=1; shift ;;
        --scenarios) scenarios="${2:?--scenarios needs e.g. S2 or S1,S3}"; shift ;;
        --home) BENCH_HOME="${2:?--home needs a folder}"; shift ;;
        --python) python="${2:?--python needs an interpreter}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) say "unknown option $1"; usage >&2; exit 2 ;;
    esac
    shift
done
# Against another revision the two dashstreams run alone, unless --peers names some to run
# beside them (e.g. --peers node-ws: both revisions' ratios to Node in the same rounds).
[ -z "$against" ] || [ "$peers_given" = 1 ] || peers=""
mkdir -p "$BENCH_HOME"
BENCH_HOME="$(cd "$BENCH_HOME" && pwd)"
out="${out:-$BENCH_HOME/report}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
raw="$out/raw"
rm -rf "$raw"
mkdir -p "$raw"
# A venv per interpreter: the default python3's is venv/, another's is named after its path.
VENV="$BENCH_HOME/venv"
[ "$python" = python3 ] || VENV="$BENCH_HOME/venv-$(printf '%s' "$python" | cksum | cut -d' ' -f1)"
PY="$VENV/bin/python"
notes="$raw/notes.txt"   # lines for the report: what was skipped and why
: >"$notes"
note() { say "$*"; echo "$*" >>"$notes"; }

# ---------------------------------------------------------------------------- what it needs
for tool in "$python" taskset git; do
    command -v "$tool" >/dev/null || { say "needs $tool (Debian/Ubuntu: apt-get install python3 util-linux git)"; exit 1; }
done
if ! command -v cc >/dev/null; then
    say "no C compiler (cc) to build the load client: install one (Debian/Ubuntu: apt-get install gcc libc6-dev;"
    say "Fedora: dnf install gcc), then run this again"
    exit 1
fi

# The venv: the peers' libraries, matplotlib, and dashstream's own dependencies from pyproject.toml.
# It is made again only when requirements.txt or pyproject.toml change.
stamp="$VENV/.compare-stamp"
# The interpreter's real file, not the name it was called by (a pyenv shim keeps its path
# when the version behind it changes): a venv made from another interpreter is made again.
want="$(cat "$HARNESS/requirements.txt" "$REPO/pyproject.toml" | cksum) $("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
if [ ! -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the venv in $VENV"
    "$python" -m venv "$VENV" || { say "$python cannot make a venv (Debian/Ubuntu: apt-get install python3-venv)"; exit 1; }
    deps="$("$PY" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))
EOF
)"
    # shellcheck disable=SC2086  # one requirement a line
    "$PY" -m pip install -q --disable-pip-version-check -r "$HARNESS/requirements.txt" $deps
    echo "$want" >"$stamp"
fi

mkdir -p "$BENCH_HOME/bin"
build() {  # build NAME SOURCE LIBS...: compile when the source is newer than the binary
    local name="$1" src="$2"
    shift 2
    if [ ! -x "$BENCH_HOME/bin/$name" ] || [ "$src" -nt "$BENCH_HOME/bin/$name" ]; then
        cc -O2 -Wall -o "$BENCH_HOME/bin/$name" "$src" "$@"
    fi
}
build wsload "$HARNESS/client/wsload.c" -lm

# The Node ws peer needs node and npm; the C epoll peer needs libcrypto's headers.
want_peer() { case " $peers " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
drop_peer() { peers="$(echo " $peers " | sed "s/ $1 / /; s/^ *//; s/ *$//")"; }
if want_peer node-ws; then
    if command -v node >/dev/null && command -v npm >/dev/null; then
        mkdir -p "$BENCH_HOME/node"
        if [ ! -d "$BENCH_HOME/node/node_modules/ws" ] || ! cmp -s "$HARNESS/package.json" "$BENCH_HOME/node/package.json"; then
            cp "$HARNESS/package.json" "$BENCH_HOME/node/package.json"
            (cd "$BENCH_HOME/node" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
        fi
        export NODE_PATH="$BENCH_HOME/node/node_modules"
    else
        note "Node ws peer skipped: node and npm not found (install nodejs and npm to include it)"
        drop_peer node-ws
    fi
fi
if want_peer c-epoll; then
    if echo '#include <openssl/evp.h>' | cc -E -x c - >/dev/null 2>&1; then
        build cpush "$HARNESS/peers/cpush.c" -lcrypto
    else
        note "C epoll peer skipped: no OpenSSL headers (Debian/Ubuntu: apt-get install libssl-dev)"
        drop_peer c-epoll
    fi
fi

# ---------------------------------------------------------------------------- the servers
# One line per server: label|url|cwd|command. dashstream runs from this checkout with the
# venv's Python (server.py imports the dashstream beside it, so no install is needed).
servers=("dashstream|ws://127.0.0.1:5105/ws/bench|$REPO|$PY benchmarks/harness_peer.py")
if [ -n "$against" ]; then
    other="$(mktemp -d "${TMPDIR:-/tmp}/dashstream-against.XXXXXX")"
    git -C "$REPO" worktree add --detach "$other" "$against" >/dev/null
    trap 'git -C "$REPO" worktree remove --force "$other"' EXIT
    rev_label="dashstream@$(git -C "$other" rev-parse --short HEAD)"
    [ -f "$other/benchmarks/harness_peer.py" ] || { say "$against has no benchmarks/harness_peer.py"; exit 1; }
    servers+=("$rev_label|ws://127.0.0.1:5106/ws/bench|$other|$PY benchmarks/harness_peer.py")
fi
for peer in $peers; do
    case "$peer" in
        eventlet)   servers+=("eventlet|ws://127.0.0.1:5101/|$REPO|$PY $HARNESS/peers/eventlet_peer.py") ;;
        websockets) servers+=("websockets|ws://127.0.0.1:5102/|$REPO|$PY $HARNESS/peers/websockets_peer.py") ;;
        node-ws)    servers+=("node-ws|ws://127.0.0.1:5103/|$REPO|node $HARNESS/peers/ws_peer.js") ;;
        c-epoll)    servers+=("c-epoll|ws://127.0.0.1:5104/|$REPO|$BENCH_HOME/bin/cpush") ;;
        # Not a server: green sockets and nothing else, the floor under any eventlet server
        # (peers/eventlet_floor.py; BENCHMARKS.md, "Floors"). Not in the default set.
        eventlet-floor) servers+=("eventlet-floor|ws://127.0.0.1:5107/|$REPO|$PY $HARNESS/peers/eventlet_floor.py") ;;
        *) say "unknown peer $peer (eventlet websockets node-ws c-epoll eventlet-floor)"; exit 2 ;;
    esac
done

# ---------------------------------------------------------------------------- the method
ncpu="$(nproc)"
if [ "$ncpu" -ge 2 ]; then
    SERVER_CPU="${SERVER_CPU:-0}" CLIENT_CPU="${CLIENT_CPU:-1}"
else
    SERVER_CPU=0 CLIENT_CPU=0
    note "one CPU only: server and load client share it, so the figures say little"
fi
if [ "$quick" = 1 ]; then
    rounds="${rounds:-1}"
    # A check that everything works, not figures: no quiet wait (the noise is still recorded).
    common=(--settle 0.3 --quiet-max -1)
    s1=(--s1-conns 300 --s1-hold 1 --s1-settle 0.5)
    s2=(--s2-conns 300 --s2-rates 10,50,100,200,400 --s2-warmup 0.5 --s2-duration 1.5)
    s3=(--s3-conns 300 --s3-warmup 1 --s3-duration 2)
    s4=(--s4-duration 2 --s4-concurrency 16)
else
    rounds="${rounds:-3}"
    common=()
    s1=()
    # Finer steps where the Python servers top out, so they do not all tie at 100, and between
    # 150 and 500, where the Python peers, dashstream and the C server top out on a fast day
    # (2026-12-04: 160,000-190,000, 270,000-280,000 and 350,000-405,000 deliveries/s at their
    # first failing steps). A step every 25 up to 300: with only 250 and 300, dashstream's
    # ceiling sat on R=300's 95 % line, and "highest sustained" swung 250/300 between runs.
    s2=(--s2-rates 10,20,50,70,100,110,120,130,140,150,175,200,225,250,275,300,350,400,500)
    s3=()
    s4=()
fi

harness() {  # harness LABEL URL CWD CMD ROUND SCENARIOS ARGS...
    local label="$1" url="$2" cwd="$3" cmd="$4" round="$5" sc="$6"
    shift 6
    # The harness sits on the client's core so the server's core carries only the server.
    (ulimit -n "$(ulimit -Hn)"; taskset -c "$CLIENT_CPU" "$PY" "$HARNESS/harness.py" \
        --server "$cmd" --cwd "$cwd" --url "$url" \
        --label "$label" --scenario "$sc" --runs 1 --first-run "$round" --out "$raw" \
        --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU" --c-client "$BENCH_HOME/bin/wsload" \
        "${common[@]}" "$@")
}

has() { case ",$scenarios," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
rest="$(echo "$scenarios" | tr ',' '\n' | { grep -v '^S2$' || true; } | paste -sd, -)"  # (none: --scenarios S2 alone)
t0=$(date +%s)
n=${#servers[@]}
for round in $(seq 1 "$rounds"); do
    say "round $round of $rounds"
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${servers[$(( (i + round - 1) % n ))]}"); done
    if has S2; then
        for s in "${order[@]}"; do
            IFS='|' read -r label url cwd cmd <<<"$s"
            harness "$label" "$url" "$cwd" "$cmd" "$round" S2 "${s2[@]}"
        done
    fi
    if [ -n "$rest" ]; then
        for s in "${order[@]}"; do
            IFS='|' read -r label url cwd cmd <<<"$s"
            sc="$rest"
            # The C server has only the broadcast shape: no private streams (S3).
            [ "$label" = c-epoll ] && sc="$(echo "$sc" | tr ',' '\n' | grep -v '^S3$' | paste -sd, -)"
            [ -n "$sc" ] && harness "$label" "$url" "$cwd" "$cmd" "$round" "$sc" "${s1[@]}" "${s3[@]}" "${s4[@]}"
        done
    fi
done
say "measured in $(( $(date +%s) - t0 ))s"

# ---------------------------------------------------------------------------- the report
labels="$(for s in "${servers[@]}"; do echo "${s%%|*}"; done | paste -sd, -)"
revs="dashstream=$(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || echo '+changes')"
[ -n "$against" ] && revs="$revs,$rev_label=$(git -C "$other" rev-parse HEAD)"
"$PY" "$HARNESS/machine_facts.py" --out "$raw/versions.json" --revisions "$revs" \
    --mode "$([ "$quick" = 1 ] && echo quick || echo full), $rounds round(s)" \
    --pinning "server on CPU $SERVER_CPU, load client and harness on CPU $CLIENT_CPU (taskset)"
title="dashstream beside the reference servers"
[ -n "$against" ] && title="dashstream: this checkout against $against"
"$PY" "$HARNESS/report.py" --results "$raw" --out "$out/report.md" --labels "$labels" --reference dashstream \
    --title "$title" --notes "$notes" --plots "$out" --print-ratios
say "report: $out/report.md (plots beside it, raw JSON lines in $raw)"
