"""The supported Pythons are said in three places that must agree: pyproject.toml's
classifiers (and requires-python's lower bound), the list tests/other_pythons.sh tests, and
README.md."""

from __future__ import annotations

import re
import tomllib

from packaging.specifiers import SpecifierSet

from tests.support import ROOT

SUPPORTED = ["3.11", "3.12", "3.13"]


def test_pyproject_the_test_script_and_readme_name_the_same_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: 3."
    classified = [c.rsplit(" ", 1)[1] for c in project["classifiers"] if c.startswith(prefix)]
    assert classified == SUPPORTED
    requires = SpecifierSet(project["requires-python"])
    assert all(version in requires for version in SUPPORTED) and "3.10" not in requires
    script = (ROOT / "tests" / "other_pythons.sh").read_text()
    assert re.search(r"^SUPPORTED=\((.*)\)$", script, re.M)[1].split() == SUPPORTED
    readme = (ROOT / "README.md").read_text()
    assert "Supported Pythons: 3.11, 3.12 and 3.13" in readme
    assert "(Python 3.11, 3.12 or 3.13)" in readme


def test_run_sh_runs_the_other_versions_beside_the_whole_suite_and_fails_when_they_fail():
    lines = (ROOT / "tests" / "run.sh").read_text().splitlines()
    others = lines.index('nice -n 10 bash tests/other_pythons.sh >"$others_log" 2>&1 &')
    assert lines[others + 1] == "others=$!"
    suite = next(i for i, line in enumerate(lines) if line.startswith("python -m pytest "))
    assert others < suite
    assert others > next(i for i, line in enumerate(lines) if line.startswith(". .venv-test/bin/activate"))
    # waited for after the suite, its output shown, and its exit status is the run's if the suite passed
    waited = lines.index('wait "$others" || others_status=$?')
    assert suite < waited < lines.index('cat "$others_log"') < lines.index('exit "$others_status"')
    assert lines[-2:] == ['[ "$suite" -eq 0 ] || exit "$suite"', 'exit "$others_status"']
    # the tests marked alone run after the others are done, their failure the run's
    main, alone = (i for i, line in enumerate(lines) if line.startswith("python -m pytest "))
    assert '-m "not alone"' in lines[main] and "-n 0 -m alone" in lines[alone]
    assert waited < alone < len(lines) - 2
