#!/usr/bin/env bash
# The unit tests and the server smoke test (tests/server/test_smoke.py: page, stream, publish,
# SSE, metrics) on every supported Python this machine has besides the one that runs the
# whole suite, each in a venv of its own (.venv-test-3.X, made once, the packages from the
# index like the main one, by the same uv). tests/run.sh starts it beside the whole suite,
# after making its own venv (which has uv):
#   bash tests/other_pythons.sh [pytest args...]
# Supported: SUPPORTED below, the same list as pyproject.toml's classifiers and README.md
# (tests/unit/test_supported_pythons.py checks the three agree). An interpreter is found
# in pyenv's versions folder (the newest patch release of each) or as pythonX.Y on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

SUPPORTED=(3.11 3.12 3.13)
# uv makes a venv in a second where the venv module's ensurepip takes 4-15 s here, and
# installs `.[test,all]` in 7 s of wall and 2.5 s of CPU (pip: 35 s and 24 s).
uv=.venv-test/bin/uv
[ -x "$uv" ] || uv=$(command -v uv) || {
    echo "tests/other_pythons.sh: no uv: run tests/run.sh once (it installs uv into .venv-test)" >&2
    exit 2
}
export UV_PYTHON_DOWNLOADS=never  # only this machine's Pythons
export UV_COMPILE_BYTECODE=1      # as pip does (tests/run.sh says why)
main=$(python -c 'import platform; print(platform.python_version())')

ran=()
absent=()
for minor in "${SUPPORTED[@]}"; do
    [ "${main%.*}" = "$minor" ] && continue  # the whole suite runs on it
    interpreter=""
    if command -v pyenv >/dev/null 2>&1; then
        # The glob sorts 3.12.1 before 3.12.10: keep the last that exists.
        for candidate in "$(pyenv root)/versions/$minor".*/bin/python"$minor"; do
            [ -x "$candidate" ] && interpreter=$candidate
        done
    fi
    [ -n "$interpreter" ] || interpreter=$(command -v "python$minor" || true)
    if [ -z "$interpreter" ]; then
        absent+=("$minor")
        continue
    fi
    venv=".venv-test-$minor"
    [ -x "$venv/bin/python" ] || "$uv" venv --quiet --python "$interpreter" "$venv"
    "$uv" pip install --quiet --python "$venv/bin/python" -e '.[test,all]'
    "$venv/bin/python" -m compileall -q -j 0 dashstream producer >/dev/null  # as tests/run.sh does
    version=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
    echo "Python $version: unit tests and the server smoke test"
    "$venv/bin/python" -m pytest -p no:cacheprovider -q tests/unit tests/server/test_smoke.py "$@"
    ran+=("$version")
done

echo "Python versions: $main (the whole suite)${ran[*]:+; ${ran[*]} (unit + smoke: passed)}${absent[*]:+; not on this machine: ${absent[*]}}"
