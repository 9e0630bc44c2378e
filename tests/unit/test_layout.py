"""The package's shape, read from its imports: no circles, nothing imports a higher layer,
eventlet only where the README's module table says, and ``dashstream.config`` loads no I/O.

Layers, from the ground up (README, "Modules"): a module may import its own layer or a lower
one. Imports inside functions count (a lazy import is still a dependency). Imports under
``TYPE_CHECKING`` count for circles (a type-only circle is still a circle of knowledge) but not
for layers: naming a higher layer's type for the reader loads nothing at run time.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS = [
    ("producer", "dashstream.protocol", "dashstream.runtime"),
    ("dashstream.messages", "dashstream.ops"),
    ("dashstream.sessions",),
    ("dashstream.streams",),
    ("dashstream.backplane",),
    ("dashstream.edge",),
    ("dashstream.config",),
    ("dashstream.server", "dashstream.__main__"),
]
# Files that may import eventlet: the serving module and the runtime; the ZeroMQ source
# needs eventlet's green zmq (pyzmq's own sockets would block the hub).
EVENTLET_FILES = {"dashstream/runtime.py", "dashstream/server/serve.py", "producer/zmq_sub.py"}


def modules() -> dict[str, Path]:
    found = {}
    for base in ("dashstream", "producer"):
        for path in sorted((ROOT / base).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def type_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            found.update(child for statement in node.body for child in ast.walk(statement))
    return found


def imported(path: Path, with_type_only: bool = True) -> list[str]:
    names = []
    tree = ast.parse(path.read_text())
    skipped = set() if with_type_only else type_only(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def graph(with_type_only: bool = True) -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for name, path in known.items():
        targets = set()
        for target in imported(path, with_type_only):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        edges[name] = targets
    return edges


def layer(name: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and to README's module table")


def test_every_module_is_in_a_layer():
    for name in modules():
        if name != "dashstream":
            layer(name)


def test_nothing_imports_a_higher_layer():
    upward = sorted(f"{source} -> {target}" for source, targets in graph(with_type_only=False).items() if source != "dashstream"
                    for target in targets if target != "dashstream" and layer(target) > layer(source))
    assert upward == []


def test_there_are_no_import_circles():
    edges = graph()
    circles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_eventlet_is_imported_only_by_the_serving_module_the_runtime_and_the_zmq_source():
    users = set()
    for path in [*modules().values(), ROOT / "server.py"]:
        if any(name == "eventlet" or name.startswith("eventlet.") for name in imported(path)):
            users.add(str(path.relative_to(ROOT)))
    assert users == EVENTLET_FILES


def test_importing_the_configuration_loads_no_eventlet_and_no_driver():
    # A fresh import in this process: the modules other tests loaded are set aside, then put back.
    watched = ("dashstream", "producer", "eventlet", "greenlet", "redis", "psycopg2", "zmq")
    kept = dict(sys.modules)
    try:
        for name in list(sys.modules):
            if name.split(".")[0] in watched:
                del sys.modules[name]
        for name in ("dashstream.config.options", "dashstream.config.stream_specs", "dashstream.config.dashboard"):
            importlib.import_module(name)
        loaded = sorted({name.split(".")[0] for name in sys.modules} & set(watched[2:]))
    finally:
        sys.modules.clear()
        sys.modules.update(kept)
    assert loaded == []
