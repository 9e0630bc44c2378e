#!/usr/bin/env bash
# The README's test command: install everything the suite needs, then run it.
#   bash tests/run.sh [pytest args...]
# System programs come from Debian's packages when missing (needs root or sudo);
# Python packages from pyproject.toml's pinned `test` extra.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The browser tests drive Debian's chromium through Playwright (which downloads no browser).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # self-signed certificates for the TLS tests
# tests/test_docker.py makes a fresh venv; Debian's own python3 keeps ensurepip in python3-venv.
python -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# tests/test_nginx.py puts Debian's nginx in front of the server (README: "Behind a reverse
# proxy"); it runs from a temporary prefix, so the package's own service is not used.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing system packages: ${need_apt[*]}"
    $sudo apt-get update -qq
    # `env`, not a VAR=value prefix: sudo drops the caller's environment.
    $sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec python -m pytest "$@"
