#!/usr/bin/env bash
# The README's test command: install everything the suite needs, then run it.
#   bash tests/run.sh [pytest args...]
# System programs come from Debian's packages when missing (needs root or sudo);
# Python packages from pyproject.toml's pinned `test` and `all` extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The browser tests drive Debian's chromium through Playwright (which downloads no browser).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # self-signed certificates for the TLS tests
# The suite runs in a venv of its own, and tests/services/test_dockerfile.py makes more; Debian's own
# python3 keeps ensurepip in python3-venv. python3, not python: a stock Debian has no `python`.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The source tests start their own redis-server and PostgreSQL on free ports (tests/services/__init__.py);
# Debian keeps initdb in /usr/lib/postgresql/VERSION/bin, off PATH. The reverse-proxy tests run nginx.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
# The kiosk recipe's checks (tests/services/test_kiosk_recipe.py): its user unit with
# `systemd-analyze --user verify`, its autostart entry with desktop-file-validate, its launcher
# with shellcheck (2.6 MB, 0.1 MB, and systemd only where a slim image lacks it).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v desktop-file-validate >/dev/null 2>&1 || need_apt+=(desktop-file-utils)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
# The benchmark tests (tests/services/test_benchmark_*.py) build the C load client with the
# system compiler and pin it and the server to cores with taskset, as the benchmark does.
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)

# Services those packages would start at install (and at boot): the tests run their own, so
# none of the packages' daemons may be left running or enabled.
daemons=()
for package in "${need_apt[@]}"; do
    case "$package" in
        redis-server) daemons+=(redis-server) ;;
        postgresql) daemons+=(postgresql) ;;
        nginx) daemons+=(nginx) ;;
    esac
done

if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing system packages: ${need_apt[*]}"
    $sudo apt-get update -qq
    # policy-rc.d answering 101 ("action forbidden") keeps invoke-rc.d and deb-systemd-invoke
    # from starting any service while the packages install; ours goes again right after
    # (a machine that has one already, as a container image often does, keeps its own).
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# tests/run.sh: no service starts while it installs packages\nexit 101\n' \
            | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
        made_policy=yes
    fi
    # `env`, not a VAR=value prefix: sudo drops the caller's environment.
    status=0
    $sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null || status=$?
    [ -z "$made_policy" ] || $sudo rm -f "$policy"
    [ "$status" -eq 0 ] || exit "$status"
    # Stopped (in case a policy let one start) and disabled (so a reboot does not start it).
    for daemon in "${daemons[@]}"; do
        if [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now "$daemon" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$daemon" ]; then
            $sudo service "$daemon" stop >/dev/null 2>&1 || true
            $sudo update-rc.d "$daemon" disable >/dev/null 2>&1 || true
        fi
    done
fi

# The suite's own venv, made once and reused: Debian's pip refuses to install into the
# system's Python (PEP 668), and the README's `.venv` stays the user's. Activated, so that
# `python` below and every `sys.executable` the tests start is the venv's. Made by the venv
# module, so it has pip: tests/services/test_install_wheel.py builds its wheel with it.
[ -x .venv-test/bin/python ] || python3 -m venv .venv-test
# shellcheck source=/dev/null
. .venv-test/bin/activate
# uv installs the packages (its pin is the test extra's): here it made this venv's whole
# `.[test,all]` in 10 s of wall and 5 s of CPU with an empty cache, where pip took 35 s and
# 24 s with a warm one. It never fetches a Python of its own (the versions tested are the
# machine's), and it reads the index from PyPI as pip would.
export UV_PYTHON_DOWNLOADS=never
uv_pin=$(grep -o '"uv==[^"]*"' pyproject.toml | tr -d '"')
[ "$(.venv-test/bin/uv --version 2>/dev/null | cut -d' ' -f2)" = "${uv_pin#uv==}" ] \
    || python -m pip install --quiet --disable-pip-version-check "$uv_pin"
# The test extra, and every optional driver: the source tests run the real ones. Compiled
# to bytecode at install, as pip does: uv does not by default, and with
# PYTHONDONTWRITEBYTECODE set (as here) every server the tests start would compile eventlet,
# redis-py and the rest from source again (0.6 s of CPU a start instead of 0.3 s, and a
# redis source's first import then held the hub past what test_source_redis allows).
export UV_COMPILE_BYTECODE=1
uv pip install --quiet -e '.[test,all]'
# The checkout's own package is installed editable, so uv compiles none of it: with
# PYTHONDONTWRITEBYTECODE set, each of the many hundred `python server.py` the suite starts
# compiled dashstream/ from source again (0.08 s of its 0.5 s of CPU). Compiled once here;
# Python reads the files (and checks them against the sources' mtimes) whatever that
# variable says, and .gitignore, .dockerignore and the tests that copy the tree leave them out.
python -m compileall -q -j 0 dashstream producer >/dev/null
# Lint first: a finding fails the run before a test starts (config in pyproject.toml).
python -m ruff check .
# The other supported Pythons this machine has: unit tests and a server smoke test on each,
# beside the whole suite (both mostly wait on servers and browsers; one after the other
# they took 2 minutes more), at a lower CPU priority so that the suite's timing checks (a
# ticker's pace beside a source) keep their CPU. Its output is shown when both are done.
others_log=$(mktemp)
trap 'rm -f "$others_log"' EXIT
nice -n 10 bash tests/other_pythons.sh >"$others_log" 2>&1 &
others=$!
# Collected once with bytecode written, before the workers start: pytest rewrites the asserts
# of every test module and compiles it, and under PYTHONDONTWRITEBYTECODE it keeps none of
# that, so each of the four workers and the run of the `alone` tests spent 7.4 s of CPU
# collecting where 2 s do with the cache (tests/**/__pycache__, git-ignored). Its outcome is
# the real run's to report.
PYTHONDONTWRITEBYTECODE="" python -m pytest --collect-only -q "$@" >/dev/null 2>&1 || true
# Four workers (pytest-xdist) on two cores, or two per core on a bigger machine: most tests
# wait on a server, a browser or a service more than they compute. Each worker has its own
# servers on free ports and its own tmp_path; the modules whose module-scoped fixture is a
# chromium, a venv, an image or a cluster run whole on one worker, so that fixture is made
# once (tests/conftest.py: ONE_WORKER_MODULES, the scheduler of --dist loadgroup).
workers=$(( $(nproc) * 2 > 4 ? $(nproc) * 2 : 4 ))
suite=0
started=$SECONDS
python -m pytest -n "$workers" --dist loadgroup -m "not alone" "$@" || suite=$?
echo "--- the suite took $((SECONDS - started)) s ---"
others_status=0
wait "$others" || others_status=$?
echo "--- tests/other_pythons.sh (ran beside the suite, exit $others_status, done $((SECONDS - started)) s after the suite began) ---"
cat "$others_log"
# Then the tests marked `alone`, one at a time with nothing beside them: a source flood that
# takes the whole machine, and latency figures held to a budget. Beside three other workers
# the floods starved the others' timing checks, and the others' load spoiled their figures.
alone=0
started=$SECONDS
python -m pytest -n 0 -m alone "$@" || alone=$?
echo "--- the tests marked alone took $((SECONDS - started)) s ---"
# (exit 5: the arguments selected none of them, or only them)
[ "$suite" -ne 5 ] || suite=0
[ "$alone" -eq 5 ] || [ "$alone" -eq 0 ] || [ "$suite" -ne 0 ] || suite=$alone
[ "$suite" -eq 0 ] || exit "$suite"
exit "$others_status"
