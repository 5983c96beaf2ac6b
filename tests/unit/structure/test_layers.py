"""The layer diagram holds: imports point down, never up, and no module imports itself back.

Every import counts, including those under `if TYPE_CHECKING:` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "fanstack"

# Lower numbers are lower layers; a module may import its own layer and those below.
LAYERS: dict[str, int] = {
    "core": 0,
    "backends": 1,
    "table": 2,
    "resources": 2,
    "runtime": 3,
    "observability": 3,
    "utilities": 4,
    "bus": 4,
    "schedules": 4,
    "workflows": 4,
    "notifications": 4,
    "gateway": 5,
    "functions": 6,
    "app": 7,
    "loader": 7,
    "serve": 8,
    "dashboard": 8,
    "readiness": 8,
    "server_processes": 8,
    "__init__": 8,
    "aws": 8,
    "cli": 9,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head not in LAYERS:
        raise AssertionError(f"{module}: add its layer to LAYERS")
    return LAYERS[head]


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "fanstack" or name.startswith("fanstack.")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imports_of(path, module):
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]  # `from pkg.mod import name` names pkg.mod
            if name in modules and name != module:
                targets.add(name)
        edges[module] = targets
    return edges


def test_imports_never_go_up_a_layer() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(source)
    ]
    assert not upward, "imports that go up the layer diagram:\n" + "\n".join(sorted(upward))


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    # A package importing its own modules (re-exports) is not a cycle of concepts.
    edges = {
        source: {
            t
            for t in targets
            if not source.startswith(f"{t}.")
            and t != "fanstack"
        }
        for source, targets in edges.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
