"""A Sphinx extension: when the package's code changes, every notebook of the book is read, so executed, again.

Sphinx re-reads only the documents whose own source changed since the last build, and myst-nb executes a
notebook only when Sphinx reads it: after an edit of ``recon/evaluate.py`` alone, ``jupyter-book build book/``
executed nothing and kept showing the numbers of the old code. This extension keeps a digest of the code the
notebooks run (every ``.py`` file under :data:`recon_source_folders`, by default the ``recon`` package) in
Sphinx's environment, and on ``env-get-outdated`` marks every notebook outdated when the digest moved. The
products themselves are cached by what computes them (:mod:`recon.cache`), so a re-executed notebook recomputes
only what the edit changed.

Enabled in ``_config.yml`` (``sphinx: extra_extensions``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def source_digest(folders) -> str:
    """A digest of every ``.py`` file under ``folders`` (names and bytes, in a stable order)."""
    h = hashlib.sha256()
    for folder in map(Path, folders):
        for path in sorted(folder.rglob("*.py")):
            h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _notebooks_if_code_changed(app, env, added, changed, removed) -> list[str]:
    digest = source_digest(app.config.recon_source_folders or [PACKAGE])
    if getattr(env, "recon_source_digest", None) == digest:
        return []
    env.recon_source_digest = digest  # kept with the pickled environment for the next build
    return sorted(name for name in env.found_docs if Path(env.doc2path(name)).suffix == ".ipynb")


def setup(app):
    app.add_config_value("recon_source_folders", [], "env")
    app.connect("env-get-outdated", _notebooks_if_code_changed)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
