"""The package's shape (docs/architecture.md): no import circle between its modules, no module over the line limit.

Read from the source with `ast`, without importing anything: every `import` of a talkinghead module counts, at module
level and inside functions alike (a function-local import is still a dependency; it only runs later).
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import talkinghead

PKG = Path(talkinghead.__file__).resolve().parent
ROOT = "talkinghead"
MAX_LINES = 600

# The rooms of docs/architecture.md ("What may import what"), by module name under talkinghead (a name covers its
# submodules). The runtime must stay torch-free; stages never reach up into the glue that chains them.
RUNTIME = ("bundle", "idle", "onnxrt", "live")
RUNTIME_GLUE = ("live.speech",)      # live's notebook-facing speech glue sits above the pipeline
TRAINING_SIDE = ("liveportrait", "a2m", "export", "bake", "pipeline", "render", "torch_renderer", "pocket")
STAGES = ("bake", "motion", "dataset", "sample", "render", "a2m", "export", "pocket")
GLUE = ("pipeline", "cli", "live.speech", "notebook", "show", "inputs", "recorder", "machine", "serve")

# Modules allowed over MAX_LINES, each with its reason. An entry whose module is gone or back under the limit fails
# `test_no_module_over_the_line_limit`, so this list only ever names what still needs it.
LONG_MODULES: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package (a package is its __init__.py)."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = [ROOT, *path.relative_to(PKG).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _in(module: str, names) -> bool:
    """`module` is one of `names` (relative to talkinghead) or inside one of them."""
    return any(module == f"{ROOT}.{n}" or module.startswith(f"{ROOT}.{n}.") for n in names)


def _reach(graph: dict, start: str) -> dict[str, str]:
    """Every module `start` loads directly or through others -> the module that imports it (for the message)."""
    seen, todo = {start: ""}, [start]
    while todo:
        v = todo.pop()
        for w in graph.get(v, {}):
            if w not in seen:
                seen[w] = v
                todo.append(w)
    return seen


def _resolve(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: dict) -> list[str]:
    """The talkinghead modules an import statement loads (the nearest known module for `from X import name`)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
    out = []
    for name in names:
        if name.split(".")[0] != ROOT:
            continue
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        out.append(name)
    return out


def import_graph() -> dict[str, dict[str, list[str]]]:
    """module -> {imported module: ['file:line (module level | in a function)', ...]}.

    Importing `a.b` from outside package `a` first runs `a/__init__.py`, so it counts as importing `a` as well."""
    known = _modules()
    graph: dict[str, dict[str, list[str]]] = {m: defaultdict(list) for m in known}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            where = f"{path.relative_to(PKG.parent)}:{node.lineno} ({'module level' if id(node) in top else 'in a function'})"
            for target in _resolve(node, module, path.name == "__init__.py", known):
                parents = target.split(".")
                chain = [".".join(parents[:k]) for k in range(2, len(parents) + 1)]  # talkinghead.a, talkinghead.a.b
                for t in chain:
                    if t != module and not module.startswith(t + "."):
                        graph[module][t].append(where)
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_every_kind_of_import():
    """The scanner itself: relative, absolute, module-level and function-local imports all become edges."""
    g = import_graph()
    assert "talkinghead.layout" in g["talkinghead.audio"]                 # from .layout import ... (module level)
    assert "talkinghead.video" in g["talkinghead.audio"]                  # from .video import ...
    assert "talkinghead.a2m" in g["talkinghead.pipeline"]                 # from .a2m import ... inside a function
    assert any("in a function" in w for w in g["talkinghead.pipeline"]["talkinghead.a2m"])
    assert "talkinghead.liveportrait.blocks" in g["talkinghead.liveportrait.warping"]  # absolute import
    assert _cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]
    assert _reach({"a": {"b": []}, "b": {"c": []}, "c": {}}, "a") == {"a": "", "b": "a", "c": "b"}
    assert _in("talkinghead.live.engine", ("live",)) and not _in("talkinghead.liveportrait.loader", ("live",))


def test_no_import_circle():
    graph = import_graph()
    cycles = _cycles(graph)
    lines = []
    for comp in cycles:
        lines.append(" <-> ".join(m.removeprefix(ROOT + ".") for m in comp))
        for a in comp:
            for b in comp:
                for where in graph[a].get(b, [])[:2]:
                    lines.append(f"    {a} -> {b}  {where}")
    assert not cycles, "import circles (break them: move the shared part down, or the caller up):\n" + "\n".join(lines)


def test_no_module_over_the_line_limit():
    known = _modules()
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in known.items()}
    over = {m: n for m, n in sizes.items() if n > MAX_LINES and m not in LONG_MODULES}
    assert not over, f"modules over {MAX_LINES} lines (split them along their sections, or list them in " \
                     f"LONG_MODULES with the reason): {over}"
    stale = [m for m in LONG_MODULES if m not in sizes or sizes[m] <= MAX_LINES]
    assert not stale, f"LONG_MODULES names modules that are gone or no longer over {MAX_LINES} lines: {stale}"


def test_the_runtime_reaches_no_training_code():
    """bundle, idle, onnxrt and live/ (but its speech glue) never load, even through other modules or inside a
    function, the networks, training, export, baking, the pipeline or a torch renderer."""
    graph = import_graph()
    runtime = [m for m in graph if _in(m, RUNTIME) and not _in(m, RUNTIME_GLUE)]
    assert runtime, "no runtime modules found: update RUNTIME to the package's layout"
    bad = []
    for m in runtime:
        via = _reach(graph, m)
        bad += [f"{m} -> ... {via[t]} -> {t}" for t in via if _in(t, TRAINING_SIDE)]
    assert not bad, "the runtime reaches training-side modules:\n" + "\n".join(sorted(set(bad)))


def test_stages_do_not_import_the_glue():
    graph = import_graph()
    bad = [f"{m} -> {t}  {where[0]}" for m in graph if _in(m, STAGES) and not _in(m, GLUE)
           for t, where in graph[m].items() if _in(t, GLUE)]
    assert not bad, "stages import the glue that chains them (move the shared part down):\n" + "\n".join(bad)
