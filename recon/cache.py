"""A content-addressed, atomic on-disk cache of arrays (features, decoded targets, images).

An entry is one ``.npz`` file named by the hash of everything that determines it. It is written
to a temporary file and renamed into place, so a reader never sees a half-written entry; a file
that is nevertheless unreadable (truncated copy, disk error) raises :class:`CacheError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np


class CacheError(OSError):
    """A cache entry that exists but cannot be read back whole."""


def digest(*parts) -> str:
    """A stable hash of JSON-serialisable parts (numpy arrays are hashed by their bytes)."""

    def normalise(value):
        if isinstance(value, np.ndarray):
            return {"array": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(), "shape": value.shape}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [normalise(v) for v in value]
        if isinstance(value, dict):
            return {str(k): normalise(v) for k, v in sorted(value.items())}
        return value

    text = json.dumps(normalise(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class Cache:
    def __init__(self, root, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.npz"

    def load(self, path: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            raise CacheError(f"corrupt cache entry {path} ({err}); delete it to recompute") from err

    def save(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, stage: str, key_parts, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Return the entry for ``(stage, key_parts)``, computing and storing it if absent."""
        if not self.enabled:
            return compute()
        path = self.path(stage, digest(stage, key_parts))
        if path.is_file():
            return self.load(path)
        arrays = {name: np.asarray(value) for name, value in compute().items()}
        self.save(path, arrays)
        return arrays
