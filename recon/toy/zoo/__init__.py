"""The toy model zoo: tiny models of the real classes, saved with ``save_pretrained``.

``python -m recon.toy.zoo build`` writes every model folder under ``zoo/`` (or ``$RECON_ZOO``) and a
``manifest.json`` with each folder's recipe, seed, training steps and time, and the sha256 and
size of every file. :func:`verify` checks a folder against the manifest before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ...errors import ReconError

MANIFEST = "manifest.json"
REBUILD_COMMAND = "python -m recon.toy.zoo build"


class ZooError(ReconError, OSError):
    """A shipped model folder that is missing, incomplete or does not match its checksum."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_table(folder: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(folder)): {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read_manifest(zoo_dir: Path) -> dict:
    path = Path(zoo_dir) / MANIFEST
    if not path.is_file():
        raise ZooError(f"missing zoo manifest {path}; rebuild the zoo with `{REBUILD_COMMAND}`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ZooError(f"corrupt zoo manifest {path}: {err}; rebuild with `{REBUILD_COMMAND}`") from err


def verify(folder) -> None:
    """Raise :class:`ZooError` unless every file of ``folder`` matches the zoo manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder.parent)
    entry = manifest.get("models", {}).get(folder.name)
    if entry is None:
        raise ZooError(f"{folder.name!r} is not in {folder.parent / MANIFEST}; rebuild with `{REBUILD_COMMAND}`")
    for name, expected in entry["files"].items():
        path = folder / name
        if not path.is_file():
            raise ZooError(f"missing model file {path}; rebuild the zoo with `{REBUILD_COMMAND}`")
        if path.stat().st_size != expected["bytes"] or sha256(path) != expected["sha256"]:
            raise ZooError(
                f"corrupt model file {path}: size or sha256 differs from {folder.parent / MANIFEST}; "
                f"rebuild the zoo with `{REBUILD_COMMAND}`"
            )
