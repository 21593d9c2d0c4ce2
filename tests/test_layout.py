"""The package's layout: imports run one way (no cycles) and no module imports another's
private names. Read from the source with `ast`, so lazy imports inside functions count too
(only imports under `if TYPE_CHECKING:` would, but there are none)."""

import ast
import os

import mergan_tf

PACKAGE_DIR = os.path.dirname(mergan_tf.__file__)


def modules():
    """{'mergan_tf.x.y': path} of every module of the package."""
    found = {}
    for dirpath, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
                found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def imports_of(module, path, known):
    """(imported module, imported name or None) of every mergan_tf import in `path`."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}", None
                elif base in known:
                    yield base, alias.name


def import_graph():
    known = modules()
    graph, private = {}, []
    for module, path in known.items():
        graph[module] = set()
        for target, name in imports_of(module, path, known):
            if target != module:
                graph[module].add(target)
            if name and name.startswith("_") and not name.startswith("__"):
                private.append(f"{module} imports {target}.{name}")
    return graph, private


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_the_package():
    graph, _ = import_graph()
    assert "mergan_tf.trainer" in graph and "mergan_tf.data.sources" in graph
    assert "mergan_tf.steps" in graph["mergan_tf.trainer"]  # a known edge is found


def test_no_import_cycles():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_no_module_imports_another_modules_private_names():
    _, private = import_graph()
    assert private == []


def test_configs_is_a_leaf():
    graph, _ = import_graph()
    assert graph["mergan_tf.configs"] == set()


def test_functions_over_40_lines_say_why_beside_them():
    """A function longer than about 40 lines carries a comment just above it (or above its
    decorators) saying why it is that long."""
    unexplained = []
    for module, path in modules().items():
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.end_lineno - node.lineno + 1 > 40:
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                above = lines[first - 2].strip() if first > 1 else ""
                if not (above.startswith("#") and "40" in above):
                    unexplained.append(f"{module}.{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert unexplained == []
