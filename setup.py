"""One build step pyproject.toml cannot express: ship the page with the package.

The page stays where users expect it, ``index.html`` at the top of the repository
(``python server.py`` serves it from there). An installed ``dashstream`` command has no
repository, so the build copies that one file into the package as
``dashstream/index.html`` (package data in the wheel). The copy exists only in build
output, never in the source tree (it is git-ignored there), so the two cannot drift;
tests/services/test_install_wheel.py builds a wheel and checks its page is byte-for-byte the root one.
Everything else about the package is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PAGE = "index.html"


class BuildWithPage(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return  # pip install -e: the package is the checkout, whose page is beside it (server/main.py)
        source = Path(__file__).resolve().parent / PAGE
        if not source.is_file():
            raise SystemExit(f"cannot build: {PAGE} is missing from {source.parent}")
        target = Path(self.build_lib) / "dashstream" / PAGE
        self.mkpath(str(target.parent))
        self.copy_file(str(source), str(target))

    def get_outputs(self, include_bytecode=1):
        # Listed as an output, so the wheel's RECORD (and pip uninstall) know the file.
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return [*outputs, str(Path(self.build_lib) / "dashstream" / PAGE)]


setup(cmdclass={"build_py": BuildWithPage})
