"""No import cycles: not between modules, not between the packages (or modules) side by side in a package.

Every import statement counts, a lazy one inside a function too: it is a cycle the moment it runs. So
does `importlib.import_module("a.literal.name")`. grimp (import-linter's graph builder) reads the
statements; the literal dynamic imports are added from the source here.
"""

import ast
import importlib.util
import sys
import textwrap
from collections import deque
from pathlib import Path

import grimp
import pytest

ROOTS = ("vocab", "trials", "dashboards", "tokensweep")
TOP = "<top level>"  # the package that holds the roots


def import_graph(*roots: str) -> dict[str, set[str]]:
    """module -> the modules of `roots` it imports, by any statement anywhere in it or by a literal import_module."""
    graph = grimp.build_graph(*roots, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}
    for module in graph.modules:
        edges[module] |= {_known(name, graph.modules) for name in _dynamic_imports(module)} - {None, module}
    return edges


def _dynamic_imports(module: str) -> list[str]:
    """The names passed as a string literal to import_module(...) in the module's source."""
    origin = importlib.util.find_spec(module).origin
    tree = ast.parse(Path(origin).read_text(encoding="utf-8"), origin)
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]


def _known(name: str, modules: set[str]) -> str | None:
    """`name`, or the closest package above it, if the graph holds it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """Each group of nodes that reach each other, as its shortest cycle through its first node and the
    rest of the group: "a -> b -> a (in the same knot: c, d)"."""
    found = []
    for group in _strongly_connected(edges):
        if len(group) > 1:
            cycle = _a_cycle(group, edges)
            rest = sorted(group - set(cycle))
            found.append(" -> ".join(cycle) + (f" (in the same knot: {', '.join(rest)})" if rest else ""))
    return sorted(found)


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, without recursion (a deep import chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            nxt = next(successors, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while node not in group:
                    group.add(stack.pop())
                on_stack -= group
                groups.append(group)
    return groups


def _a_cycle(group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest path from the group's first node back to itself, inside the group."""
    start = min(group)
    came_from = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                path = [start]
                while node != start:
                    path.insert(1, node)
                    node = came_from[node]
                return [*path, start]
            if nxt in group and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")


def package_cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(package, cycle) among the children of each package: its modules and sub-packages, a sub-package standing
    for everything below it (an import between two children's descendants is an import between them)."""
    found = []
    for package in sorted({m.rpartition(".")[0] for m in edges}):
        children: dict[str, set[str]] = {}
        for module, imported in edges.items():
            here = _child_of(package, module)
            if here is None:
                continue
            children.setdefault(here, set()).update(
                there for there in (_child_of(package, m) for m in imported) if there not in (None, here)
            )
        found += [(package or TOP, cycle) for cycle in cycles(children)]
    return found


def _child_of(package: str, module: str) -> str | None:
    """The child of `package` that is `module` or holds it; None outside the package (or the package itself)."""
    prefix = package + "." if package else ""
    if not module.startswith(prefix) or module == package:
        return None
    return prefix + module[len(prefix) :].split(".")[0]


def _under(root: str, name: str) -> bool:
    return name == root or name.startswith(root + ".")


@pytest.fixture(scope="module")
def project_graph() -> dict[str, set[str]]:
    return import_graph(*ROOTS)


@pytest.mark.parametrize("root", ROOTS)
def test_no_module_imports_itself_through_others(project_graph, root):
    found = [cycle for cycle in cycles(project_graph) if _under(root, cycle.partition(" ")[0])]
    assert not found, "modules that import themselves through others:\n" + "\n".join(found)


@pytest.mark.parametrize("root", ROOTS)
def test_no_two_parts_of_a_package_import_each_other(project_graph, root):
    found = [f"in {package}: {cycle}" for package, cycle in package_cycles(project_graph) if _under(root, package)]
    assert not found, "parts of a package that import each other:\n" + "\n".join(found)


def test_the_layers_import_each_other_one_way(project_graph):
    found = [cycle for package, cycle in package_cycles(project_graph) if package == TOP]
    assert not found, "layers that import each other:\n" + "\n".join(found)


# --- the checker finds what it is for ---


def _package(tmp_path, monkeypatch, files: dict[str, str]) -> dict[str, set[str]]:
    """import_graph of a throw-away package `cyc` made of `files` (path -> source)."""
    for path, source in {"cyc/__init__.py": "", **files}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "cyc" or m.startswith("cyc.")]:  # another test's `cyc`
        monkeypatch.delitem(sys.modules, name)
    return import_graph("cyc")


def test_it_finds_a_cycle_closed_by_an_import_inside_a_function(tmp_path, monkeypatch):
    edges = _package(tmp_path, monkeypatch, {
        "cyc/a.py": "from cyc.b import B\n",
        "cyc/b.py": "B = 1\n\ndef later():\n    from cyc import a\n    return a\n",
        "cyc/c.py": "import cyc.a\n",
    })  # fmt: skip
    assert cycles(edges) == ["cyc.a -> cyc.b -> cyc.a"]


def test_it_finds_a_cycle_closed_by_a_literal_import_module(tmp_path, monkeypatch):
    edges = _package(tmp_path, monkeypatch, {
        "cyc/a.py": "import importlib\n\ndef load():\n    return importlib.import_module('cyc.b')\n",
        "cyc/b.py": "from cyc.a import load\n",
    })  # fmt: skip
    assert cycles(edges) == ["cyc.a -> cyc.b -> cyc.a"]


def test_it_finds_two_packages_that_import_each_other_through_different_modules(tmp_path, monkeypatch):
    edges = _package(tmp_path, monkeypatch, {
        "cyc/x/__init__.py": "",
        "cyc/x/one.py": "from cyc.y.one import Y\n",
        "cyc/x/two.py": "X = 2\n",
        "cyc/y/__init__.py": "",
        "cyc/y/one.py": "Y = 1\n",
        "cyc/y/two.py": "def later():\n    from cyc.x.two import X\n",
    })  # fmt: skip
    assert cycles(edges) == []  # no module imports itself: only the packages do
    assert package_cycles(edges) == [("cyc", "cyc.x -> cyc.y -> cyc.x")]


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path, monkeypatch):
    edges = _package(tmp_path, monkeypatch, {
        "cyc/x/__init__.py": "from cyc.x.one import ONE\n",
        "cyc/x/one.py": "ONE = 1\n",
        "cyc/y.py": "from cyc.x import ONE\n",
    })  # fmt: skip
    assert cycles(edges) == [] and package_cycles(edges) == []
