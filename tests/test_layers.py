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
