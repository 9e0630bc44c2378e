#!/usr/bin/env bash
# The unit tests and the server smoke test (tests/server/test_smoke.py: page, stream, publish,
# SSE, metrics) on every supported Python this machine has besides the one that runs the
# whole suite, each in a venv of its own (.venv-test-3.X, made once, the packages from the
# index like the main one). tests/run.sh calls it after making its own venv:
#   bash tests/other_pythons.sh [pytest args...]
# Supported: SUPPORTED below, the same list as pyproject.toml's classifiers and README.md
# (tests/unit/test_supported_pythons.py checks the three agree). An interpreter is found
# in pyenv's versions folder (the newest patch release of each) or as pythonX.Y on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

SUPPORTED=(3.11 3.12 3.13)
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
    [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test,all]'
    version=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
    echo "Python $version: unit tests and the server smoke test"
    "$venv/bin/python" -m pytest -p no:cacheprovider -q tests/unit tests/server/test_smoke.py "$@"
    ran+=("$version")
done

echo "Python versions: $main (the whole suite, next)${ran[*]:+; ${ran[*]} (unit + smoke: passed)}${absent[*]:+; not on this machine: ${absent[*]}}"
