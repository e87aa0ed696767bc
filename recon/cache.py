"""A content-addressed, atomic on-disk cache of arrays (features, decoded targets, images).

An entry is a folder ``<root>/<stage>/<key>/`` named by the hash of everything that determines it,
holding one ``.npy`` file per array and ``entry.json`` (names, shapes, dtypes, byte sizes).
Arrays are read back as read-only memory maps, so a 40 GB feature matrix costs no host memory
until a column block of it is touched, and an entry can be written batch by batch
(:meth:`Cache.stream`) without ever being whole in memory.

Atomicity: an entry is written into a hidden temporary folder beside its final place and renamed
into place when complete; a reader never sees a half-written entry, and a temporary left by a
killed process is never read. An entry that is nevertheless damaged (truncated copy, disk error)
fails its size check and raises :class:`CacheError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

MANIFEST = "entry.json"
#: arrays smaller than this are read into memory; larger ones are memory-mapped
MMAP_THRESHOLD = 1 << 20
_HASH_CHUNK = 1 << 26


class CacheError(OSError):
    """A cache entry that exists but cannot be read back whole."""


def _array_digest(value: np.ndarray) -> dict:
    """sha256 of an array's bytes, fed in chunks so a memory map is never copied whole."""
    h = hashlib.sha256()
    flat = value.reshape(-1) if value.flags.c_contiguous else None
    if flat is None:  # rare: hash C-ordered chunks of rows
        for start in range(0, max(len(value), 1), 256):
            h.update(np.ascontiguousarray(value[start : start + 256]).view(np.uint8).reshape(-1))
    else:
        if flat.dtype == object:
            raise TypeError("cannot hash an object array; pass numbers or fixed-width strings")
        raw = flat.view(np.uint8)
        for start in range(0, raw.size, _HASH_CHUNK):
            h.update(raw[start : start + _HASH_CHUNK])
    return {"array": h.hexdigest(), "shape": list(value.shape), "dtype": str(value.dtype)}


def digest(*parts) -> str:
    """A stable hash of JSON-serialisable parts (numpy arrays are hashed by their bytes and shape)."""

    def normalise(value):
        if isinstance(value, np.ndarray):
            return _array_digest(value)
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [normalise(v) for v in value]
        if isinstance(value, dict):
            return {str(k): normalise(v) for k, v in sorted(value.items())}
        if isinstance(value, np.generic):
            return value.item()
        return value

    text = json.dumps(normalise(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class EntryWriter:
    """Collects the arrays of one entry in its temporary folder.

    ``create`` returns a writable ``.npy`` memory map to fill batch by batch; ``put`` stores a
    whole array. Nothing here is visible to readers until :meth:`Cache.stream` commits the folder.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._maps: dict[str, np.memmap] = {}
        self._files: dict[str, str] = {}

    def _file(self, name: str) -> Path:
        """``name.npy``, or a hashed file name for names such as ``CLIP(Early)``."""
        stem = name if name.isidentifier() else "array_" + hashlib.sha256(name.encode()).hexdigest()[:12]
        self._files[name] = f"{stem}.npy"
        return self.folder / self._files[name]

    def create(self, name: str, shape, dtype=np.float32) -> np.memmap:
        array = np.lib.format.open_memmap(self._file(name), mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        self._maps[name] = array
        return array

    def put(self, name: str, value) -> None:
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError(f"cache array {name!r} has dtype object; store numbers or fixed-width strings")
        np.save(self._file(name), value, allow_pickle=False)

    def commit_manifest(self) -> None:
        for array in self._maps.values():
            array.flush()
        self._maps.clear()
        arrays = {}
        for name, filename in self._files.items():
            file = self.folder / filename
            arrays[name] = {"file": filename, **_read_header(file), "bytes": file.stat().st_size}
        (self.folder / MANIFEST).write_text(json.dumps({"arrays": arrays}, indent=1))


def _read_header(file: Path) -> dict:
    with open(file, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    return {"shape": list(shape), "dtype": dtype.str, "fortran": fortran}


class Cache:
    def __init__(self, root, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def key_path(self, stage: str, key_parts) -> Path:
        return self.path(stage, digest(stage, key_parts))

    # ------------------------------------------------------------------ reading
    def load(self, path: Path) -> dict[str, np.ndarray]:
        """All arrays of a complete entry; large ones as read-only memory maps."""
        manifest = path / MANIFEST
        try:
            listing = json.loads(manifest.read_text())["arrays"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CacheError(f"corrupt cache entry {path} (unreadable {MANIFEST}: {err}); delete it to recompute") from err
        out = {}
        for name, expected in listing.items():
            file = path / expected.get("file", f"{name}.npy")
            try:
                size = file.stat().st_size
                if size != expected["bytes"]:
                    raise ValueError(f"{file.name} has {size} bytes, expected {expected['bytes']}")
                header = _read_header(file)
                if header["shape"] != expected["shape"] or header["dtype"] != expected["dtype"]:
                    raise ValueError(f"{file.name} header {header} does not match {MANIFEST}")
                big = size >= MMAP_THRESHOLD
                out[name] = np.load(file, mmap_mode="r" if big else None, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise CacheError(f"corrupt cache entry {path} ({err}); delete it to recompute") from err
        return out

    # ------------------------------------------------------------------ writing
    @contextmanager
    def stream(self, path: Path) -> Iterator[EntryWriter]:
        """Write an entry's arrays into a temporary folder; rename it into place when the block ends.

        An exception (or a killed process) leaves no entry; a concurrent writer that finished first
        wins, and this one's temporary is discarded.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        try:
            writer = EntryWriter(tmp)
            yield writer
            writer.commit_manifest()
            try:
                os.rename(tmp, path)
            except OSError:
                if not (path / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextmanager
    def scratch(self, fill: Callable[[EntryWriter], None]) -> Iterator[dict[str, np.ndarray]]:
        """An entry that exists only inside the block: ``fill(writer)`` writes it, the block reads it
        (as memory maps), and it is deleted at the end, whatever happens. For intermediates that
        are large and cheap to recompute, such as the training-image features a decoder reads once."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".scratch-", dir=self.root))
        try:
            writer = EntryWriter(tmp)
            fill(writer)
            writer.commit_manifest()
            yield self.load(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def save(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        with self.stream(path) as writer:
            for name, value in arrays.items():
                writer.put(name, value)

    # ------------------------------------------------------------------ the API
    def get(self, stage: str, key_parts, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Return the entry for ``(stage, key_parts)``, computing and storing it if absent."""
        if not self.enabled:
            return compute()
        path = self.key_path(stage, key_parts)
        if not path.is_dir():
            self.save(path, compute())
        return self.load(path)

    def get_streamed(self, stage: str, key_parts, fill: Callable[[EntryWriter], None]) -> dict[str, np.ndarray]:
        """Like :meth:`get`, for entries too large for memory: ``fill(writer)`` writes them batch by batch.

        With the cache disabled, the entry goes to a temporary folder that is removed at exit."""
        if not self.enabled:
            tmp = Path(tempfile.mkdtemp(prefix="recon-uncached-"))
            _remove_at_exit(tmp)
            path = tmp / "entry"
        else:
            path = self.key_path(stage, key_parts)
        if not path.is_dir():
            with self.stream(path) as writer:
                fill(writer)
        return self.load(path)


def _remove_at_exit(folder: Path) -> None:
    import atexit

    atexit.register(shutil.rmtree, folder, ignore_errors=True)
