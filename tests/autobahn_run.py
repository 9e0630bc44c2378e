"""The Autobahn|Testsuite fuzzing client against a real dashstream server's ``/echo``.

    python tests/autobahn_run.py                                  # default options
    python tests/autobahn_run.py --max-message-size 16777216 --compression   # 9.x and 12.x/13.x too

Starts ``python server.py`` on a free loopback port with the options given (anything after
this script's own options goes to the server), runs ``wstest -m fuzzingclient`` on every
case (12.x and 13.x, permessage-deflate, only when ``--compression`` is among them), then
prints how many cases ended in each verdict and every case that did not end OK or
INFORMATIONAL, with the close code the server sent. Exits 1 if any case FAILED. Reports
land in ``--out`` (HTML per case, ``index.json``).

``wstest`` is Python 2 software: install it with a Python 2.7 interpreter, e.g.
``PYENV_VERSION=2.7.18 python -m pip install --user autobahntestsuite==25.10.1`` (it lands
in ``~/.local/bin/wstest``). Not part of the pytest suite: CI machines have no Python 2.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support import free_port  # noqa: E402

GOOD = {"OK", "INFORMATIONAL", "NON-STRICT"}


def case_key(case: str) -> list[int]:
    return [int(part) for part in case.split(".")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wstest", default=os.path.expanduser("~/.local/bin/wstest"))
    parser.add_argument("--python2-env", default="2.7.18", help="PYENV_VERSION for wstest (pyenv installs)")
    parser.add_argument("--cases", default="*", help="comma-separated case patterns, e.g. 1.*,5.*")
    parser.add_argument("--out", default=None, help="report folder (default: a temporary one)")
    args, server_options = parser.parse_known_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="autobahn-"))
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port),
                               "--log-level", "warning", *server_options],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.05)
        excluded = [] if "--compression" in server_options else ["12.*", "13.*"]
        spec = {"outdir": str(out), "servers": [{"agent": "dashstream", "url": f"ws://127.0.0.1:{port}/echo"}],
                "cases": args.cases.split(","), "exclude-cases": excluded, "exclude-agent-cases": {}}
        (out / "fuzzingclient.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "fuzzingclient.json").write_text(json.dumps(spec))
        env = {**os.environ, "PYENV_VERSION": args.python2_env}
        subprocess.run([args.wstest, "-m", "fuzzingclient", "-s", str(out / "fuzzingclient.json")], cwd=out,
                       env=env, stdout=subprocess.DEVNULL, check=True, timeout=1800)
    finally:
        server.terminate()
        server.wait(10)
    results = json.loads((out / "index.json").read_text())["dashstream"]
    verdicts = collections.Counter((r["behavior"], r["behaviorClose"]) for r in results.values())
    print(f"{len(results)} cases, server options {' '.join(server_options) or '(defaults)'}; reports in {out}")
    for (behavior, close), count in verdicts.most_common():
        print(f"  {count:4d}  {behavior} / close {close}")
    failed = 0
    for case in sorted(results, key=case_key):
        result = results[case]
        if result["behavior"] in GOOD and result["behaviorClose"] in GOOD:
            continue
        failed += "FAILED" in (result["behavior"], result["behaviorClose"])
        detail = json.loads((out / result["reportfile"].replace(".html", ".json")).read_text())
        print(f"  {case}: {result['behavior']} / {result['behaviorClose']}, server closed "
              f"{detail.get('remoteCloseCode')} {detail.get('remoteCloseReason') or ''}".rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
