"""The package's layers, enforced: each part imports only the parts below it.

Reading from the bottom: settings and the connection options every client derives from them;
physics; the sky (coordinates, maps); the data sets; the wire format; the metrics; the model,
the observers and the alert policy; the two runtimes (model server, stream worker); the Faust
app; the local stack; the tools built on all of it; the command line. An import that points
up, or one between the two runtimes, fails here with the line that makes it.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "icecube_stream"

LAYERS: list[set[str]] = [
    {"config"},
    {"connections"},
    {"physics"},
    {"sky"},
    {"events"},
    {"wire"},
    {"metrics"},
    {"model", "observe", "alerts"},
    {"serving", "stream"},
    {"app"},
    {"stack"},
    {"tools"},
    {"cli"},
    {"__main__"},
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str | None:
    """The layer part a dotted module of the package belongs to (None: the package itself)."""
    names = module.split(".")
    return names[1] if names[0] == "icecube_stream" and len(names) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of the package in a file, lazy ones included."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("icecube_stream")]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in _modules()}
    assert parts - {"__init__"} == set(LEVEL)


def test_no_import_points_up_or_across_the_runtimes() -> None:
    wrong = []
    for path in _modules():
        here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if here == "__init__":
            continue
        for line, name in _imports(path):
            there = _part(name)
            if there is None or there == here:
                continue
            if LEVEL[there] >= LEVEL[here]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert wrong == []


def test_no_module_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in _modules():
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        graph[module] = {name for _, name in _imports(path)}
    # An imported name resolves to its module.
    graph = {m: {n if n in graph else n.rsplit(".", 1)[0] for n in ns} for m, ns in graph.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target not in graph or target == module:
                continue
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
