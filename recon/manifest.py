"""Model folders with a manifest: the model loader's contract for every local folder.

A folder of models (the toy zoo, or the dry run's random-weight architectures) holds one folder per model and a
``manifest.json`` beside them that lists each model's files with their sha256 and size (and whatever its builder
records: recipe, seed, quality). :func:`verify` checks a folder against it before :mod:`recon.models` loads it;
the builders write it with :func:`file_table`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import ReconError

MANIFEST = "manifest.json"
#: what rebuilds the folders the repository ships (the toy zoo); named in the errors
REBUILD_COMMAND = "python -m recon.toy.zoo build"


class ManifestError(ReconError, OSError):
    """A model folder that is missing, incomplete or does not match its checksum."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_table(folder: Path) -> dict[str, dict]:
    """Every file under ``folder``: its path inside it, sha256 and size (a model's ``files`` in the manifest)."""
    return {
        str(p.relative_to(folder)): {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read(root: Path) -> dict:
    """The manifest of the models under ``root``."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"missing zoo manifest {path}; rebuild the zoo with `{REBUILD_COMMAND}`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"corrupt zoo manifest {path}: {err}; rebuild with `{REBUILD_COMMAND}`") from err


def verify(folder) -> None:
    """Raise :class:`ManifestError` unless every file of ``folder`` matches the manifest beside it."""
    folder = Path(folder)
    manifest = read(folder.parent)
    entry = manifest.get("models", {}).get(folder.name)
    if entry is None:
        raise ManifestError(f"{folder.name!r} is not in {folder.parent / MANIFEST}; rebuild with `{REBUILD_COMMAND}`")
    for name, expected in entry["files"].items():
        path = folder / name
        if not path.is_file():
            raise ManifestError(f"missing model file {path}; rebuild the zoo with `{REBUILD_COMMAND}`")
        if path.stat().st_size != expected["bytes"] or sha256(path) != expected["sha256"]:
            raise ManifestError(
                f"corrupt model file {path}: size or sha256 differs from {folder.parent / MANIFEST}; "
                f"rebuild the zoo with `{REBUILD_COMMAND}`"
            )
