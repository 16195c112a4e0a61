"""The import graph of the library, read from the source (imports inside functions counted): no two
modules import each other, directly or round a loop, and no import points from a lower layer to a
higher one. The layers, from the ground: manifests, model, pipeline, train, eval, autosong (the
commands). A package's `__main__` is an entry point (`python -m train`), outside the layers."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["manifests", "model", "pipeline", "train", "eval", "autosong"]


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules) -> set[str]:
    """The project modules `path` imports anywhere in it (a `from a.b import c` counts a.b, and
    a.b.c when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        out |= {n for n in names if n in modules}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_import_points_up_a_layer():
    upward = sorted(f"{a} -> {b}" for a, deps in _graph().items() for b in deps if _layer(b) > _layer(a))
    assert upward == [], upward


def test_no_modules_import_each_other_round_a_loop():
    graph = _graph()
    loops, state = [], {}

    def visit(node, path):  # depth-first; a grey node met again closes a loop
        state[node] = "grey"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "grey":
                loops.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "black"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert loops == [], [" -> ".join(loop) for loop in loops]


def test_the_graph_is_read():  # the checks above would pass on an empty graph
    graph = _graph()
    assert len(graph) > 60
    assert "model.model_config" in graph["model.transformer"] and "manifests.errors" in graph["model.bundle"]
