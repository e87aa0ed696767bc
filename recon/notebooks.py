"""The book's notebooks: each ``notebooks/*.ipynb`` is paired with a jupytext percent ``.py``.

``python -m recon.notebooks check`` fails if any pair differs (CI); ``sync`` rewrites each
``.ipynb`` from its ``.py`` (the reviewed source), keeping no outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext

from .config import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
FORMAT = "py:percent"


def pairs(folder: Path = NOTEBOOKS) -> list[tuple[Path, Path]]:
    """(ipynb, py) pairs; a notebook without its text twin (or the reverse) is an error."""
    ipynbs = {p.stem: p for p in folder.glob("*.ipynb")}
    texts = {p.stem: p for p in folder.glob("*.py")}
    unpaired = sorted(set(ipynbs) ^ set(texts))
    if unpaired:
        raise FileNotFoundError(f"notebooks without their jupytext pair in {folder}: {unpaired}")
    return [(ipynbs[stem], texts[stem]) for stem in sorted(ipynbs)]


def out_of_sync(folder: Path = NOTEBOOKS) -> list[str]:
    """Names of the pairs whose ``.ipynb`` cells differ from their ``.py``."""
    return [ipynb.name for ipynb, text in pairs(folder) if _cells(jupytext.read(ipynb)) != _cells(jupytext.read(text))]


def _cells(notebook) -> list[tuple[str, str, tuple]]:
    """What a reader sees: each cell's type, source and tags (not outputs or jupytext's version stamp)."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in notebook.cells]


def sync(folder: Path = NOTEBOOKS) -> list[str]:
    """Rewrite each ``.ipynb`` that differs from its ``.py``; the others are left untouched (jupytext
    would give their cells new ids, a diff with no content)."""
    stale = out_of_sync(folder)
    for ipynb, text in pairs(folder):
        if ipynb.name in stale:
            jupytext.write(jupytext.read(text), ipynb, fmt="ipynb")
    return stale


def main(argv=None) -> int:
    command = (argv if argv is not None else sys.argv[1:]) or ["check"]
    if command[0] == "sync":
        rewritten = sync()
        print(f"rewrote {', '.join(rewritten)}" if rewritten else "every pair already in sync")
        return 0
    if command[0] == "check":
        stale = out_of_sync()
        if stale:
            print(f"out of sync with their .py pair: {', '.join(stale)}; run `python -m recon.notebooks sync`",
                  file=sys.stderr)
            return 1
        print(f"{len(pairs())} notebook pairs in sync")
        return 0
    print("usage: python -m recon.notebooks [check|sync]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
