"""The house rules, checked on the source: one installed namespace, roles as folders, imports
that go one way (no cycles, none upward, none hidden in a function), an analytic cycle model
that loads no Amaranth, and documents that stand alone."""

import ast
import subprocess
import sys
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Repository folder -> installed package (pyproject.toml's package-dir).
FOLDERS = {"golden": "diannao.golden", "hw": "diannao.hw", "boards": "diannao.boards",
           "sim": "diannao.sim"}
#: Layers, lowest first: a module may import its own layer and the layers below it. Two
#: layers of one rank (boards, the compiler) may not import each other.
LAYERS = [
    ("diannao.golden", 0),
    ("diannao.hw", 1),
    ("diannao.boards", 2),
    ("diannao.sim.compiler", 2),
    ("diannao.sim.runtime", 3),
    ("diannao.sim.engines", 4),
    ("diannao.sim.tools", 5),
    ("diannao.sim.cli", 6),
    ("diannao.sim", 6),
]
#: The names the folders had before the namespace; importing them would load a second copy.
BARE = set(FOLDERS)


def layer_of(module):
    for prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    raise AssertionError(f"{module} belongs to no layer")


def modules():
    """``{module name: path}`` of every source module of the package."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            found[".".join((package,) + rel)] = path
    return found


def imports(module, source, known):
    """``[(line, imported module)]`` of every import statement in ``source`` (at any depth,
    function bodies included), resolved to the project's modules; names outside the project
    are left out, except the bare folder names, returned as they are."""
    is_package = module + ".__init__" in known or any(
        k.startswith(module + ".") for k in known)
    here = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from package import module` imports the module.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in BARE:
                found.append((node.lineno, target))
            elif target.startswith("diannao."):
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                found.append((node.lineno, target))
    return found


def problems(sources):
    """Every breach of the layering in ``sources`` (``{module: source text}``)."""
    known = set(sources)
    out, graph = [], {m: set() for m in sources}
    for module, source in sources.items():
        layer, rank = layer_of(module)
        for line, target in imports(module, source, known):
            if target.split(".")[0] in BARE:
                out.append(f"{module}:{line} imports {target} (outside the diannao namespace)")
                continue
            if target not in known:
                continue
            graph[module].add(target)
            t_layer, t_rank = layer_of(target)
            if t_rank > rank or (t_rank == rank and t_layer != layer):
                out.append(f"{module}:{line} imports {target}: {layer} may not import "
                           f"{t_layer}")
    out += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return out


def cycles(graph):
    """The strongly connected components of ``graph`` with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_imports_go_one_way_with_no_cycles():
    sources = {m: p.read_text() for m, p in modules().items()}
    assert len(sources) > 40
    assert problems(sources) == []


@pytest.mark.parametrize("sources,expected", [
    # upward: the compiler may not import an engine
    ({"diannao.sim.compiler.a": "from diannao.sim.engines.b import x",
      "diannao.sim.engines.b": "x = 1"},
     ["diannao.sim.compiler.a:1 imports diannao.sim.engines.b: diannao.sim.compiler may not "
      "import diannao.sim.engines"]),
    # sideways at one rank, hidden in a function
    ({"diannao.boards.a": "def f():\n    from diannao.sim.compiler import b",
      "diannao.sim.compiler.b": "x = 1"},
     ["diannao.boards.a:2 imports diannao.sim.compiler.b: diannao.boards may not import "
      "diannao.sim.compiler"]),
    # a cycle inside one layer, through a relative import
    ({"diannao.hw.a": "from . import b", "diannao.hw.b": "from diannao.hw.a import x"},
     ["import cycle: diannao.hw.a -> diannao.hw.b"]),
    # the folder's bare name
    ({"diannao.sim.tools.a": "import sim.compiler"},
     ["diannao.sim.tools.a:1 imports sim.compiler (outside the diannao namespace)"]),
    # downward is fine
    ({"diannao.sim.tools.a": "from diannao.hw import b", "diannao.hw.b": "import numpy"}, []),
])
def test_the_import_check_finds_each_kind_of_breach(sources, expected):
    assert problems(sources) == expected


def test_pyproject_installs_one_namespace_with_every_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    assert tool["package-dir"] == {package: folder for folder, package in FOLDERS.items()}
    packages = sorted(m for m, p in modules().items() if p.name == "__init__.py")
    assert sorted(tool["packages"]) == packages
    assert all(p.startswith("diannao.") for p in tool["packages"])
    assert project["project"]["scripts"] == {"diannao": "diannao.sim.cli:main"}


def test_the_cycle_model_and_the_compiler_load_no_amaranth():
    code = ("import sys, diannao.sim.compiler.cycle_model, diannao.sim.compiler.program, "
            "diannao.sim.runtime.inputs; "
            "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('amaranth')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_no_file_points_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    # Spelled in pieces so that this file does not match itself.
    needles = ("sha" + "red/", "DES" + "IGN.md", "DES" + "IGN §")
    bad = []
    for name in files:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".toml", ".txt", ".json", "") or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(needle in line for needle in needles):
                bad.append(f"{name}:{n}: {line.strip()}")
    assert bad == []


def test_installed_as_one_top_level_package():
    dist = importlib.metadata.distribution("diannao")
    assert dist.read_text("top_level.txt").split() == ["diannao"]
    # Outside the repository, the folders' own names import nothing.
    code = ("import importlib.util as u; "
            "print([n for n in ('hw', 'sim', 'golden', 'boards') if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/")
    assert out.stdout.strip() == "[]"
