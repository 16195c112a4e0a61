"""The import graph of the library, read from the source (imports inside functions counted): no two
modules import each other, directly or round a loop, and no import points from a lower layer to a
higher one. The layers, from the ground: manifests, model, pipeline, train, eval, autosong (the
commands). A package's `__main__` is an entry point (`python -m autosong.train`), outside the layers."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["manifests", "model", "pipeline", "train", "eval", "autosong"]


def _modules() -> dict[str, Path]:
    """Every library module by its import name (autosong.model.transformer for model/transformer.py)."""
    found = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join(parts if package == "autosong" else ("autosong", *parts))] = path
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
    stage = module.split(".")[1] if module.count(".") else "autosong"
    return LAYERS.index(stage if stage in LAYERS else "autosong")


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
    assert "autosong.model.model_config" in graph["autosong.model.transformer"]
    assert "autosong.manifests.errors" in graph["autosong.model.bundle"]
    assert _layer("autosong.demo") == LAYERS.index("autosong") and _layer("autosong.train.codec.vq") == LAYERS.index("train")


def test_one_import_name():
    """Every module imports the project as `autosong....`: the old short names (`model`, `train`,
    ...) would load a second copy of a module, or a user's own `model.py`."""
    short = sorted(f"{path.relative_to(ROOT)}: {node.module if isinstance(node, ast.ImportFrom) else node.names[0].name}"
                   for path in [*_modules().values(), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]
                   for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, (ast.Import, ast.ImportFrom)) and (
                       (node.module or "") if isinstance(node, ast.ImportFrom) else node.names[0].name
                   ).split(".")[0] in LAYERS[:-1])
    assert short == [], short


def test_imports_inside_functions_are_few_and_say_why():
    """A project import inside a function hides a dependency from the reader and from the layer
    check's eye at import time: at most 20, each with its reason on the line (start-up time, or
    an optional heavy dependency)."""
    inside = []
    for path in _modules().values():
        source = path.read_text()
        lines = source.splitlines()
        for function in ast.walk(ast.parse(source)):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside += [(path, node.lineno, lines[node.end_lineno - 1]) for node in ast.walk(function)
                           if isinstance(node, (ast.Import, ast.ImportFrom)) and _ours(node)]
    assert len(inside) <= 20, [f"{p.relative_to(ROOT)}:{n}" for p, n, _ in inside]
    unexplained = [f"{p.relative_to(ROOT)}:{n}" for p, n, line in inside if "#" not in line]
    assert unexplained == [], unexplained


def _ours(node) -> bool:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    return any(n.split(".")[0] in LAYERS for n in names)


def test_every_stage_has_its_loss_and_its_eval():
    """A stage is a class in model/stages.py plus a row in each layer's table, keyed by its name."""
    from autosong.eval.stages import EVALS
    from autosong.model.stages import STAGES
    from autosong.train.losses import LOSSES

    assert set(STAGES) == set(LOSSES) == set(EVALS)


def test_files_and_functions_stay_short():
    """What a reader takes in at once: no library file over 400 lines, no function over 60."""
    long_files, long_functions = [], []
    for name, path in _modules().items():
        source = path.read_text()
        if source.count("\n") > 400:
            long_files.append(name)
        long_functions += [f"{name}.{node.name}" for node in ast.walk(ast.parse(source))
                           if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                           and node.end_lineno - node.lineno + 1 > 60]
    assert long_files == [] and long_functions == [], (long_files, long_functions)
