"""The import layering of the package (README "Architecture"): no module imports from a higher layer, and no
two modules import each other, directly or around a loop, counting imports inside functions too."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zippypoint"

# Layer of each package or module, lowest first; a module may import its own layer and the layers below.
# The most specific name wins (zippypoint.train.split, the fixed development split, is a leaf of train/).
LAYERS = (
    ("zippypoint", "zippypoint.lazy", "zippypoint.machine", "zippypoint.ort_session", "zippypoint.timing", "zippypoint.data_paths", "zippypoint.io",
     "zippypoint.viz", "zippypoint.binary_desc", "zippypoint.train.split"),
    ("zippypoint.quant", "zippypoint.postprocess", "zippypoint.matching", "zippypoint.store",
     "zippypoint.mapindex"),
    ("zippypoint.model",),
    ("zippypoint.export",),
    ("zippypoint.runtime", "zippypoint.extractor"),
    ("zippypoint.resolve",),
    ("zippypoint.methods",),
    ("zippypoint.eval",),
    ("zippypoint.bench", "zippypoint.train", "zippypoint.search", "zippypoint.sfm", "zippypoint.distributed"),
    ("zippypoint.demo", "zippypoint.cli", "zippypoint.commands", "zippypoint.__main__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, layer = "", None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, layer = name, index
    if layer is None:
        raise LookupError(f"{module} has no layer in tests/test_layers.py (and the README's Architecture table)")
    return layer


def imports_of(module: str) -> set[str]:
    """Project modules that ``module`` imports anywhere in its file (module level or inside functions)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target.startswith("zippypoint") and target != module:
                found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
                    for m, targets in GRAPH.items() for t in targets
                    if t != "zippypoint" and layer_of(t) > layer_of(m))
    assert not upward, "\n".join(upward)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module (the import cycles)."""
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles():
    graph = {m: {t for t in targets if t != "zippypoint"} for m, targets in GRAPH.items()}
    assert strongly_connected(graph) == []


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert strongly_connected(graph) == expected
