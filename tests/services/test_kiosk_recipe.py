"""The kiosk recipe (README.md, "Kiosk: a TV that shows the wall on its own"; deploy/kiosk/),
tested as far as a machine without a display or a systemd user manager allows.

* The files: the user unit passes ``systemd-analyze --user verify`` and has the keys that
  matter; the autostart entry passes ``desktop-file-validate``, shipped and installed; the
  launcher passes ``bash -n`` and ``shellcheck`` (tests/run.sh installs Debian's shellcheck,
  desktop-file-utils and systemd when missing). Each tool is shown failing a broken copy.
* The README's install commands, run as written in a scratch home (``systemctl`` replaced by
  a recorder: there is no user manager here; ``sudo apt-get`` left out).
* The launcher with a stand-in browser that records its command line: the exact flags, the
  order of the settings, ``xset`` on X11, and every refusal with its whole message.
* The launcher with Debian's Chromium, headless (``DASHSTREAM_KIOSK_EXTRA_FLAGS``), against a
  real server: Playwright attaches over the DevTools port that Chromium writes to the profile's
  ``DevToolsActivePort`` and reads the wall; a profile left ``Crashed`` (by a real SIGKILL, as a
  power cut leaves it) is marked ``Normal`` before the next start; ``--keep-running`` brings
  the browser back and SIGTERM stops everything.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.browser import CHROMIUM
from tests.support import ROOT, ServerProcess, scaled, wait_until

pytestmark = pytest.mark.timeout(180)

KIOSK = ROOT / "deploy" / "kiosk"
LAUNCHER = KIOSK / "dashstream-kiosk.sh"
UNIT = KIOSK / "dashstream-kiosk.service"
ENTRY = KIOSK / "dashstream-kiosk.desktop"

# The flags README.md's table lists, in the launcher's order (after --user-data-dir).
RECIPE_FLAGS = [
    "--no-first-run",
    "--noerrdialogs",
    "--disable-infobars",
    "--disable-session-crashed-bubble",
    "--hide-crash-restore-bubble",
    "--check-for-update-interval=31536000",
    "--autoplay-policy=no-user-gesture-required",
    "--password-store=basic",
    "--disable-features=Translate",
    "--ozone-platform-hint=auto",
]
HEADLESS = "--headless=new --no-sandbox --disable-gpu --remote-debugging-port=0"

WALL = """\
[streams.office]
source = "random-walk"
shared = true
min_wait = 0.1
max_wait = 0.3
start = 1000

[streams.pattern]
source = "ticker"
rate = 4.0

[dashboard]
title = "Lobby"

[[dashboard.tiles]]
stream = "office"
label = "Office walk"

[[dashboard.tiles]]
stream = "pattern"
label = "Ticker"
"""

# Runs before the page's script: the state of an AudioContext made on load, before anything
# could count as a click (Playwright's own evaluate() calls are user gestures, so the state
# is read from what the page recorded, not by making a context from the test).
AUDIO_AT_LOAD = """
window.addEventListener("load", () => {
  const context = new AudioContext();
  setTimeout(() => { window.__audioAtLoad = context.state; }, 300);
});
"""


# --- helpers ---------------------------------------------------------------------------------


def readme_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Kiosk: a TV that shows the wall on its own\n", 1)[1].split("\n## ", 1)[0]


def readme_sh_block(containing: str) -> str:
    """The section's one ```sh block (indented inside a list item) that contains ``containing``."""
    blocks = [textwrap.dedent(body) for indent, body in
              re.findall(r"^( *)```sh\n(.*?)^\1```$", readme_section(), flags=re.S | re.M)]
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"the Kiosk section has {len(found)} ```sh blocks with {containing!r}"
    return found[0]


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def recorder_bin(tmp_path: Path) -> Path:
    """A folder of stand-ins put first on PATH: ``systemctl`` and ``xset`` record their
    arguments, one call per line, in ``calls`` beside them."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name in ("systemctl", "xset"):
        write_executable(folder / name, f'#!/bin/sh\necho "{name} $*" >> "{folder}/calls"\n')
    return folder


def calls(folder: Path) -> list[str]:
    path = folder / "calls"
    return path.read_text().splitlines() if path.exists() else []


def run_readme_block(block: str, home: Path, path_first: Path) -> None:
    """The block's lines as written, in the checkout, with HOME a scratch folder; only the
    ``sudo apt-get install`` line is left out (the packages are this machine's already)."""
    lines = [line for line in block.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith("sudo apt-get install ")]
    assert len(lines) - len(kept) <= 1, lines
    env = {**os.environ, "HOME": str(home), "PATH": f"{path_first}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(kept)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=scaled(30))
    assert result.returncode == 0, (kept, result.stdout, result.stderr)


def install(home: Path, tmp_path: Path, starter: str) -> Path:
    """The launcher and one starter (``systemd`` or ``autostart``) installed the README's way;
    the recorder folder (its ``calls``)."""
    home.mkdir()
    folder = recorder_bin(tmp_path)
    run_readme_block(readme_sh_block("install -D -m 755 deploy/kiosk/dashstream-kiosk.sh"), home, folder)
    if starter == "systemd":
        run_readme_block(readme_sh_block("systemctl --user enable"), home, folder)
    else:
        run_readme_block(readme_sh_block("~/.config/autostart"), home, folder)
    return folder


def stand_in_browser(tmp_path: Path) -> Path:
    """A browser that records its arguments (``argv``, NUL-separated), the profile's
    Preferences as it found them (``preferences``) and exits."""
    record = tmp_path / "record"
    record.mkdir(exist_ok=True)
    return write_executable(tmp_path / "browser", f"""#!/usr/bin/env bash
printf '%s\\0' "$@" > "{record}/argv"
profile=""
for argument in "$@"; do case "$argument" in --user-data-dir=*) profile="${{argument#*=}}" ;; esac; done
cp "$profile/Default/Preferences" "{record}/preferences" 2>/dev/null || true
""")


def recorded_argv(tmp_path: Path) -> list[str]:
    return (tmp_path / "record" / "argv").read_text().split("\0")[:-1]


def launcher_env(home: Path, **settings: str) -> dict:
    """The environment of a session's launcher: this machine's, without any display or
    DASHSTREAM_KIOSK_* of its own, HOME a scratch folder, then ``settings``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DASHSTREAM_KIOSK_") and key not in ("DISPLAY", "WAYLAND_DISPLAY",
                                                                    "XDG_STATE_HOME", "XDG_CONFIG_HOME")}
    return {**env, "HOME": str(home), **settings}


def run_launcher(*args: str, env: dict, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LAUNCHER), *args], env=env, capture_output=True, text=True,
                          timeout=scaled(timeout), stdin=subprocess.DEVNULL)


def crashed_preferences() -> dict:
    return {"profile": {"exit_type": "Crashed", "exited_cleanly": False, "name": "Kiosk"},
            "browser": {"window_placement": {"maximized": True}}}


# --- the unit, the autostart entry, the script -----------------------------------------------


def test_readme_install_commands_put_the_files_where_the_unit_expects_them(tmp_path):
    home = tmp_path / "home"
    folder = install(home, tmp_path, "systemd")
    launcher = home / ".local/bin/dashstream-kiosk"
    unit = home / ".config/systemd/user/dashstream-kiosk.service"
    assert launcher.read_bytes() == LAUNCHER.read_bytes()
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
    assert unit.read_bytes() == UNIT.read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert (home / ".config/dashstream-kiosk.env").read_text() == \
        "DASHSTREAM_KIOSK_URL=http://dash.example:5000/?sound=1\n"
    assert calls(folder) == ["systemctl --user daemon-reload", "systemctl --user enable dashstream-kiosk.service"]


def unit_sections(path: Path) -> configparser.ConfigParser:
    # systemd's syntax is INI-like: no interpolation (%h is systemd's), keys case-sensitive.
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_the_user_unit_runs_the_installed_launcher_with_the_session_and_always_restarts():
    unit = unit_sections(UNIT)
    assert unit["Service"]["ExecStart"] == "%h/.local/bin/dashstream-kiosk"  # README's install target
    assert unit["Service"]["Restart"] == "always"
    assert unit["Service"]["RestartSec"] == "5"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"  # never gives up
    assert unit["Unit"]["After"] == unit["Unit"]["PartOf"] == "graphical-session.target"
    assert unit["Install"]["WantedBy"] == "graphical-session.target"
    assert "Type" not in unit["Service"]  # simple: the launcher execs the browser, systemd watches it


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze not found: install Debian's systemd (tests/run.sh does)"
    return found


def verify_user_unit(unit: Path, home: Path, runtime: Path) -> subprocess.CompletedProcess:
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run([systemd_analyze(), "--user", "verify", str(unit)], env=env,
                          capture_output=True, text=True, timeout=scaled(30))


def test_the_installed_user_unit_passes_systemd_analyze_verify(tmp_path):
    home = tmp_path / "home"
    install(home, tmp_path, "systemd")
    unit = home / ".config/systemd/user/dashstream-kiosk.service"
    result = verify_user_unit(unit, home, tmp_path / "runtime")
    assert result.returncode == 0 and result.stderr == "", result.stderr

    # The check is real: a misspelt value and an ExecStart that is not installed both fail it.
    broken = tmp_path / "home/.config/systemd/user/broken-kiosk.service"
    broken.write_text(UNIT.read_text().replace("Restart=always", "Restart=allways")
                      .replace("%h/.local/bin/dashstream-kiosk", "%h/.local/bin/not-installed"))
    result = verify_user_unit(broken, home, tmp_path / "runtime")
    assert "Failed to parse service restart specifier" in result.stderr, result.stderr
    assert result.returncode != 0 and f"{home}/.local/bin/not-installed is not executable" in result.stderr, \
        result.stderr


def desktop_file_validate(path: Path) -> subprocess.CompletedProcess:
    found = shutil.which("desktop-file-validate")
    assert found, "desktop-file-validate not found: install Debian's desktop-file-utils (tests/run.sh does)"
    return subprocess.run([found, str(path)], capture_output=True, text=True, timeout=scaled(30))


def test_the_autostart_entry_passes_desktop_file_validate_shipped_and_installed(tmp_path):
    home = tmp_path / "home"
    install(home, tmp_path, "autostart")
    installed = home / ".config/autostart/dashstream-kiosk.desktop"
    for entry in (ENTRY, installed):
        result = desktop_file_validate(entry)
        assert result.returncode == 0 and result.stdout == result.stderr == "", (entry, result.stdout, result.stderr)
    exec_lines = [line for line in installed.read_text().splitlines() if line.startswith("Exec=")]
    assert exec_lines == [f"Exec={home}/.local/bin/dashstream-kiosk --keep-running"]
    assert os.access(home / ".local/bin/dashstream-kiosk", os.X_OK)
    assert installed.read_text().replace(f"{home}/.local/bin/", "") == ENTRY.read_text()

    broken = tmp_path / "broken.desktop"
    broken.write_text(ENTRY.read_text().replace("Type=Application", "Type=Program"))
    result = desktop_file_validate(broken)
    assert result.returncode != 0 and "Program" in result.stdout, result.stdout


def test_the_launcher_passes_bash_n_and_shellcheck(tmp_path):
    syntax = subprocess.run(["bash", "-n", str(LAUNCHER)], capture_output=True, text=True, timeout=scaled(10))
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck not found: install Debian's shellcheck (tests/run.sh does)"
    result = subprocess.run([shellcheck, str(LAUNCHER)], capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, result.stdout

    careless = write_executable(tmp_path / "careless.sh", '#!/usr/bin/env bash\nprofile=$1\nrm -rf $profile/Default\n')
    result = subprocess.run([shellcheck, str(careless)], capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode != 0 and "SC2086" in result.stdout, result.stdout


# --- the launcher, with a stand-in browser ---------------------------------------------------


def test_the_launcher_runs_the_browser_with_the_recipe_flags_on_its_own_profile(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    folder = recorder_bin(tmp_path)
    env = launcher_env(home, DASHSTREAM_KIOSK_BROWSER=str(stand_in_browser(tmp_path)), DISPLAY=":7",
                       PATH=f"{folder}:{os.environ['PATH']}")
    result = run_launcher("http://dash.example:5000/?screen=lobby", env=env)
    assert result.returncode == 0, result.stderr
    profile = home / ".local/state/dashstream-kiosk"
    assert recorded_argv(tmp_path) == [f"--user-data-dir={profile}", *RECIPE_FLAGS,
                                       "--kiosk", "http://dash.example:5000/?screen=lobby"]
    assert profile.is_dir()
    # X11: the screen saver and DPMS off, exactly the README's command.
    assert calls(folder) == ["xset s off -dpms s noblank"]
    assert "xset s off -dpms s noblank" in readme_section()
    # Every flag the launcher passes is in the README's table.
    table = readme_section().split("| flag | why, on a wall |", 1)[1].split("\n\n", 1)[0]
    for flag in RECIPE_FLAGS:
        assert f"`{flag}`" in table, flag

    # On Wayland (XWayland sets DISPLAY too) it leaves blanking to the session: no xset.
    (folder / "calls").unlink()
    result = run_launcher(env={**env, "WAYLAND_DISPLAY": "wayland-0"})
    assert result.returncode == 0, result.stderr
    assert calls(folder) == []
    assert recorded_argv(tmp_path)[-2:] == ["--kiosk", "http://localhost:5000/"]  # the default URL


def test_help_and_the_readme_list_the_same_settings(tmp_path):
    result = run_launcher("--help", env=launcher_env(tmp_path))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("dashstream-kiosk: Chromium full screen on a dashstream wall")
    in_help = set(re.findall(r"^  (DASHSTREAM_KIOSK_[A-Z_]+) ", result.stdout, re.M))
    table = readme_section().split("| setting | default | meaning |", 1)[1].split("\n\n", 1)[0]
    in_readme = set(re.findall(r"^\| `(DASHSTREAM_KIOSK_[A-Z_]+)` \|", table, re.M))
    # DASHSTREAM_KIOSK_ENV names the file itself, so it is not one of the file's settings.
    assert in_help == in_readme | {"DASHSTREAM_KIOSK_ENV"}, (in_help, in_readme)
    assert "DASHSTREAM_KIOSK_ENV" in readme_section()


def test_settings_come_from_the_argument_then_the_environment_then_the_file(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config/dashstream-kiosk.env").write_text(
        "# the lobby TV\n"
        "DASHSTREAM_KIOSK_URL=http://from-file:5000/\n"
        "  DASHSTREAM_KIOSK_MODE=\"app\"\n"
        f"DASHSTREAM_KIOSK_PROFILE='{tmp_path}/profile from file'\n"
        "\n"
        "DASHSTREAM_KIOSK_EXTRA_FLAGS=--window-size=1920,1080 --force-device-scale-factor=1\n")
    env = launcher_env(home, DASHSTREAM_KIOSK_BROWSER=str(stand_in_browser(tmp_path)), WAYLAND_DISPLAY="wayland-0")

    assert run_launcher(env=env).returncode == 0
    argv = recorded_argv(tmp_path)
    assert argv[0] == f"--user-data-dir={tmp_path}/profile from file"
    assert argv[-3:] == ["--window-size=1920,1080", "--force-device-scale-factor=1", "--app=http://from-file:5000/"]

    assert run_launcher(env={**env, "DASHSTREAM_KIOSK_URL": "http://from-env:5000/"}).returncode == 0
    assert recorded_argv(tmp_path)[-1] == "--app=http://from-env:5000/"

    result = run_launcher("https://from-argument/", env={**env, "DASHSTREAM_KIOSK_URL": "http://from-env:5000/",
                                                         "DASHSTREAM_KIOSK_MODE": "kiosk"})
    assert result.returncode == 0, result.stderr
    assert recorded_argv(tmp_path)[-2:] == ["--kiosk", "https://from-argument/"]
    assert result.stderr.endswith(f"dashstream-kiosk: {tmp_path}/browser (kiosk) on https://from-argument/, "
                                  f"profile {tmp_path}/profile from file\n")

    # DASHSTREAM_KIOSK_ENV names another file.
    other = tmp_path / "other.env"
    other.write_text("DASHSTREAM_KIOSK_URL=http://other-file/\n")
    assert run_launcher(env={**env, "DASHSTREAM_KIOSK_ENV": str(other)}).returncode == 0
    assert recorded_argv(tmp_path)[-2:] == ["--kiosk", "http://other-file/"]


def test_the_launcher_marks_the_last_exit_normal_before_the_browser_starts(tmp_path):
    home = tmp_path / "home"
    preferences = home / ".local/state/dashstream-kiosk/Default/Preferences"
    preferences.parent.mkdir(parents=True)
    preferences.write_text(json.dumps(crashed_preferences(), separators=(",", ":")))  # Chromium's form
    env = launcher_env(home, DASHSTREAM_KIOSK_BROWSER=str(stand_in_browser(tmp_path)), WAYLAND_DISPLAY="wayland-0")
    result = run_launcher(env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads((tmp_path / "record/preferences").read_text())
    expected = crashed_preferences()
    expected["profile"].update(exit_type="Normal", exited_cleanly=True)
    assert seen == expected


REFUSALS = [
    ("unknown key", 2, "dashstream-kiosk: {env_file} line 2: unknown setting 'DASHSTREAM_KIOSK_URI' "
                       "(allowed: DASHSTREAM_KIOSK_URL, _BROWSER, _PROFILE, _MODE, _EXTRA_FLAGS)\n"),
    ("no equals sign", 2, "dashstream-kiosk: {env_file} line 2: expected KEY=VALUE\n"),
    ("not a web address", 2, "dashstream-kiosk: the URL must start with http://, https:// or file://, "
                             "got 'dash.example:5000'\n"),
    ("unknown mode", 2, "dashstream-kiosk: DASHSTREAM_KIOSK_MODE must be kiosk or app, got 'fullscreen'\n"),
    ("unknown option", 2, "dashstream-kiosk: unknown option --fullscreen (see --help)\n"),
    ("two URLs", 2, "dashstream-kiosk: one URL only, got http://a/ and http://b/\n"),
    ("no display", 1, "dashstream-kiosk: neither WAYLAND_DISPLAY nor DISPLAY is set: start it from the "
                      "graphical session (its autostart, or the systemd user unit after graphical-session.target)\n"),
    ("profile in use", 1, "dashstream-kiosk: another Chromium (pid {pid}) already runs on {profile}: stop it "
                          "first (is both the systemd unit and the autostart entry installed?)\n"),
]


@pytest.mark.parametrize(("case", "status", "message"), REFUSALS, ids=[case for case, _, _ in REFUSALS])
def test_the_launcher_refuses_what_it_cannot_run(tmp_path, case, status, message):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    env_file = home / ".config/dashstream-kiosk.env"
    profile = home / ".local/state/dashstream-kiosk"
    env = launcher_env(home, DASHSTREAM_KIOSK_BROWSER=str(stand_in_browser(tmp_path)), WAYLAND_DISPLAY="wayland-0")
    args: list[str] = []
    if case == "unknown key":
        env_file.write_text("# lobby\nDASHSTREAM_KIOSK_URI=http://dash.example/\n")
    elif case == "no equals sign":
        env_file.write_text("\nDASHSTREAM_KIOSK_URL http://dash.example/\n")
    elif case == "not a web address":
        args = ["dash.example:5000"]
    elif case == "unknown mode":
        env["DASHSTREAM_KIOSK_MODE"] = "fullscreen"
    elif case == "unknown option":
        args = ["--fullscreen"]
    elif case == "two URLs":
        args = ["http://a/", "http://b/"]
    elif case == "no display":
        del env["WAYLAND_DISPLAY"]
    elif case == "profile in use":
        # Chromium's lock: a symlink to HOSTNAME-PID; this test's own process is alive.
        profile.mkdir(parents=True)
        (profile / "SingletonLock").symlink_to(f"{os.uname().nodename}-{os.getpid()}")
    result = run_launcher(*args, env=env)
    assert result.returncode == status, result.stderr
    assert result.stderr.splitlines(keepends=True)[-1] == \
        message.format(env_file=env_file, pid=os.getpid(), profile=profile)
    assert not (tmp_path / "record/argv").exists()  # no browser was started


def test_a_stale_lock_of_a_dead_browser_does_not_stop_the_launcher(tmp_path):
    # What a power cut or SIGKILL leaves: the lock names a pid that no longer runs.
    home = tmp_path / "home"
    profile = home / ".local/state/dashstream-kiosk"
    profile.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (profile / "SingletonLock").symlink_to(f"{os.uname().nodename}-{dead.pid}")
    env = launcher_env(home, DASHSTREAM_KIOSK_BROWSER=str(stand_in_browser(tmp_path)), WAYLAND_DISPLAY="wayland-0")
    result = run_launcher(env=env)
    assert result.returncode == 0, result.stderr
    assert recorded_argv(tmp_path)[-1] == "http://localhost:5000/"


# --- the launcher, with Debian's Chromium against a real server --------------------------------


class Kiosk:
    """The launcher started as a session would (its own process group, so the browser's
    children go with it), on a profile of its own, with a test-only browser wrapper: it
    records each start (pid, and the Preferences it found) and maps ``dash.test`` to
    127.0.0.1, a host name that, unlike 127.0.0.1, is not a secure context by itself."""

    def __init__(self, tmp_path: Path, url: str, *args: str, extra_flags: str = ""):
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.profile = tmp_path / "kiosk-profile"
        self.record = tmp_path / "starts"
        self.record.mkdir()
        wrapper = write_executable(tmp_path / "chromium-wrapper", f"""#!/bin/sh
count=$(( $(cat "{self.record}/pids" 2>/dev/null | wc -l) + 1 ))
cp "{self.profile}/Default/Preferences" "{self.record}/preferences-$count" 2>/dev/null || true
echo $$ >> "{self.record}/pids"  # last: a test that sees the pid finds the copy
exec {CHROMIUM} "--host-resolver-rules=MAP dash.test 127.0.0.1" "$@"
""")
        env = launcher_env(self.home, DASHSTREAM_KIOSK_BROWSER=str(wrapper), DASHSTREAM_KIOSK_PROFILE=str(self.profile),
                           DASHSTREAM_KIOSK_EXTRA_FLAGS=f"{HEADLESS} {extra_flags}".strip())
        self.log = (tmp_path / "kiosk.log").open("w+")
        self.proc = subprocess.Popen(["bash", str(LAUNCHER), *args, url], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        """The launcher's lines and Chromium's, without its complaints about a missing D-Bus."""
        self.log.seek(0)
        return "".join(line for line in self.log if "ERROR:dbus/" not in line)[-6000:]

    def starts(self) -> list[int]:
        path = self.record / "pids"
        return [int(line) for line in path.read_text().split()] if path.exists() else []

    def preferences_at_start(self, number: int) -> dict:
        return json.loads((self.record / f"preferences-{number}").read_text())

    def devtools_port(self, timeout: float = 30) -> int:
        active = self.profile / "DevToolsActivePort"

        def port():
            assert self.proc.poll() is None, f"launcher exited with {self.proc.returncode}:\n{self.output()}"
            return active.exists() and active.read_text().split()[0]

        return int(wait_until(port, timeout, interval=0.1, message="Chromium's DevToolsActivePort"))

    def leftovers(self) -> list[int]:
        """Processes still running with this kiosk's profile on their command line."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if str(self.profile).encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    pass
        return found

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(scaled(10))

        def none_left() -> bool:
            for pid in self.leftovers():  # only processes on this test's own profile
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return not self.leftovers()

        wait_until(none_left, 10, interval=0.1, message="every Chromium process of the kiosk's profile gone")
        self.log.close()


def read_wall(playwright, port: int) -> dict:
    """Attach to the kiosk's Chromium, wait until every tile is live, and read what it shows."""
    browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}", timeout=scaled(15) * 1000)
    try:
        context = browser.contexts[0]
        page = wait_until(lambda: context.pages and context.pages[0], 10, message="the kiosk's page")
        page.set_default_timeout(scaled(15) * 1000)
        page.wait_for_function("window.__audioAtLoad !== undefined")
        page.wait_for_function("document.querySelectorAll('[data-tile]').length === 2 && "
                               "[...document.querySelectorAll('[data-tile]')].every(t => t.dataset.state === 'live')")
        ticker = "document.querySelector('[data-tile=pattern] [data-field=value]').textContent"
        page.wait_for_function(f"{ticker} !== {page.evaluate(ticker)!r}")  # values keep coming
        return {
            "url": page.url,
            "pages": len(context.pages),
            "tiles": page.eval_on_selector_all("[data-tile]", "tiles => tiles.map(t => [t.dataset.tile, "
                                               "t.dataset.state, t.querySelector('[data-field=value]').textContent])"),
            "audio_at_load": page.evaluate("window.__audioAtLoad"),
            "secure": page.evaluate("window.isSecureContext"),
            "wake_lock": page.evaluate("'wakeLock' in navigator"),
        }
    finally:
        browser.close()  # over CDP: detaches, the kiosk's browser keeps running


@pytest.fixture
def wall_server(start_server, tmp_path) -> ServerProcess:
    config = tmp_path / "wall.toml"
    config.write_text(WALL)
    return start_server("--config", str(config))


@pytest.fixture
def playwright_driver():
    from playwright.sync_api import sync_playwright  # imported here, as tests/conftest.py does

    with sync_playwright() as playwright:
        yield playwright


def attach_probe_and_reload(playwright, port: int) -> None:
    """Chromium has no flag for an init script: attached, the probe is added and the page
    reloaded (a reload is no user gesture, so the audio policy still applies)."""
    browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}", timeout=scaled(15) * 1000)
    try:
        context = browser.contexts[0]
        page = wait_until(lambda: context.pages and context.pages[0], 10, message="the kiosk's page")
        context.add_init_script(AUDIO_AT_LOAD)
        page.reload(timeout=scaled(15) * 1000)  # a reload is no user gesture
        page.wait_for_function("window.__audioAtLoad !== undefined", timeout=scaled(15) * 1000)
    finally:
        browser.close()


def test_the_launcher_shows_the_live_wall_in_chromium_on_a_profile_it_marked_clean(tmp_path, wall_server,
                                                                                   playwright_driver):
    url = f"http://dash.test:{wall_server.port}/"
    preferences = tmp_path / "kiosk-profile/Default/Preferences"
    preferences.parent.mkdir(parents=True)
    preferences.write_text(json.dumps(crashed_preferences(), separators=(",", ":")))
    kiosk = Kiosk(tmp_path, url, extra_flags=f"--unsafely-treat-insecure-origin-as-secure=http://dash.test:{wall_server.port}")
    try:
        port = kiosk.devtools_port()
        attach_probe_and_reload(playwright_driver, port)
        wall = read_wall(playwright_driver, port)
        assert wall["url"] == url and wall["pages"] == 1
        assert [(tile, state) for tile, state, _ in wall["tiles"]] == [("office", "live"), ("pattern", "live")]
        assert all(re.fullmatch(r"[\d,.]+", value) for _, _, value in wall["tiles"]), wall["tiles"]
        assert wall["audio_at_load"] == "running"  # ?sound=1 can play without a click
        assert wall["secure"] is True and wall["wake_lock"] is True
        # The launcher became the browser (exec: the pid systemd watches is Chromium's) and
        # the profile it handed over said Normal.
        assert kiosk.starts() == [kiosk.proc.pid]
        assert kiosk.preferences_at_start(1)["profile"]["exit_type"] == "Normal"

        # A power cut, as far as the profile can tell: SIGKILL. Chromium's own file then says
        # Crashed, in the form the launcher's sed rewrites.
        wait_until(lambda: '"exit_type":"Crashed"' in preferences.read_text(), 20,
                   message="Chromium marking its running profile Crashed")
        os.killpg(kiosk.proc.pid, signal.SIGKILL)
        kiosk.proc.wait(scaled(10))
        left = json.loads(preferences.read_text())
        assert left["profile"]["exit_type"] == "Crashed"
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n--- launcher and Chromium ---\n{kiosk.output()}") from None
    finally:
        kiosk.stop()


def test_keep_running_starts_chromium_again_after_a_crash_and_sigterm_stops_both(tmp_path, wall_server,
                                                                                playwright_driver):
    url = f"http://127.0.0.1:{wall_server.port}/"
    kiosk = Kiosk(tmp_path, url, "--keep-running")
    preferences = kiosk.profile / "Default/Preferences"
    try:
        port = kiosk.devtools_port()
        attach_probe_and_reload(playwright_driver, port)
        assert [state for _, state, _ in read_wall(playwright_driver, port)["tiles"]] == ["live", "live"]
        first, = kiosk.starts()
        assert first != kiosk.proc.pid  # the launcher stays, the browser is its child

        wait_until(lambda: preferences.exists() and '"exit_type":"Crashed"' in preferences.read_text(), 20,
                   message="Chromium marking its running profile Crashed")
        (kiosk.profile / "DevToolsActivePort").unlink()
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: not Path(f"/proc/{first}").exists(), 5, message="the killed browser reaped")
        left = json.loads(preferences.read_text())  # what the dead browser left: nothing writes it now
        assert left["profile"]["exit_type"] == "Crashed"
        # Started again about 5 s later, on the profile Chromium left Crashed, marked Normal first.
        second = wait_until(lambda: len(kiosk.starts()) == 2 and kiosk.starts()[1], 20, interval=0.1,
                            message="the launcher starting the browser again")
        assert 4.5 <= time.monotonic() - killed_at <= scaled(15)
        left["profile"]["exit_type"] = "Normal"  # the one value changed in Chromium's whole file
        assert kiosk.preferences_at_start(2) == left
        assert "the browser exited with status 137; starting it again in 5 s" in kiosk.output()
        port = kiosk.devtools_port()
        attach_probe_and_reload(playwright_driver, port)
        assert [state for _, state, _ in read_wall(playwright_driver, port)["tiles"]] == ["live", "live"]

        # SIGTERM (systemd's stop, a session's logout): the browser shuts down cleanly and the
        # launcher exits 0 without starting another.
        kiosk.proc.send_signal(signal.SIGTERM)
        assert kiosk.proc.wait(scaled(20)) == 0
        wait_until(lambda: not Path(f"/proc/{second}").exists(), 10, message="the browser gone")
        wait_until(lambda: not kiosk.leftovers(), 15, interval=0.1, message="the browser's children gone too")
        assert kiosk.starts() == [first, second]
        # A clean shutdown: Chromium takes SIGTERM for the end of the session (a logout, a
        # shutdown), which it does not count as a crash either.
        assert json.loads(preferences.read_text())["profile"]["exit_type"] == "SessionEnded"
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n--- launcher and Chromium ---\n{kiosk.output()}") from None
    finally:
        kiosk.stop()


def test_without_the_recipe_flags_the_audio_waits_for_a_click_and_plain_http_is_no_secure_context(
        tmp_path, wall_server, playwright_driver):
    # The same Chromium and page without the launcher: what the two flags above change.
    profile = tmp_path / "plain-profile"
    proc = subprocess.Popen([CHROMIUM, "--host-resolver-rules=MAP dash.test 127.0.0.1", *HEADLESS.split(),
                             f"--user-data-dir={profile}", "--no-first-run", f"http://dash.test:{wall_server.port}/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        active = profile / "DevToolsActivePort"
        port = int(wait_until(lambda: active.exists() and active.read_text().split()[0], 30, interval=0.1,
                              message="Chromium's DevToolsActivePort"))
        attach_probe_and_reload(playwright_driver, port)
        wall = read_wall(playwright_driver, port)
        assert wall["audio_at_load"] == "suspended"
        assert wall["secure"] is False and wall["wake_lock"] is False
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(scaled(10))
