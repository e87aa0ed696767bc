"""The science stands below the stand-in world: importing a science module loads nothing from ``recon.toy``."""

import json
import subprocess
import sys

import pytest

#: the modules of the science (issue 34's list, and the manifest contract the model loader owns)
SCIENCE = ("config", "nsd", "manifest", "models", "features", "decode", "ridge_streamed", "methods", "evaluate",
           "claims", "cache", "experiment", "stages", "recipes")


@pytest.mark.parametrize("module", SCIENCE)
def test_a_science_module_imports_nothing_from_the_toy_world(module):
    probe = (f"import json, sys; import recon.{module}; "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('recon.toy'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                       text=True).stdout)
    assert loaded == [], f"importing recon.{module} loads {loaded}"


def test_the_zoo_writes_the_manifest_the_loader_reads():
    from recon import manifest
    from recon.toy import zoo

    assert zoo.ZooError is manifest.ManifestError and zoo.read_manifest is manifest.read
    assert zoo.verify is manifest.verify and zoo.MANIFEST == manifest.MANIFEST


@pytest.mark.parametrize("module", SCIENCE)
def test_no_science_module_names_the_toy_world_even_inside_a_function(module):
    """Also the imports a function makes when it runs (a lazy import is still a dependency)."""
    import ast

    from recon.config import REPO_ROOT

    tree = ast.parse((REPO_ROOT / "recon" / f"{module}.py").read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = "." * node.level + (node.module or "")
            if name.lstrip(".").startswith("toy") or name.startswith("recon.toy"):
                found.append(name)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("recon.toy")]
    assert found == [], f"recon/{module}.py imports {found}"


def test_the_package_import_graph_has_no_circle():
    """Every import in recon/ (at module level or inside a function) as an edge between its modules: no circle,
    so each module can be read, and tested, from the modules below it."""
    import ast
    import graphlib

    from recon.config import REPO_ROOT

    package = REPO_ROOT / "recon"
    files = {}
    for file in package.rglob("*.py"):
        parts = file.relative_to(REPO_ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    graph = {}
    for module, file in files.items():
        here = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
        imported = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]).rstrip(".") if node.level \
                    else node.module
                imported |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        graph[module] = {name for name in imported if name in files and name != module}
    assert len(graph) > 30 and sum(map(len, graph.values())) > 60  # the walk found the package's imports
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as circle:
        raise AssertionError(f"import circle: {' -> '.join(circle.args[1])}") from None
