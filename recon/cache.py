"""A content-addressed, atomic on-disk cache of arrays (features, decoded targets, images).

An entry is a folder ``<root>/<stage>/<key>/`` named by the hash of everything that determines it,
holding one ``.npy`` file per array and ``entry.json`` (names, shapes, dtypes, byte sizes).
Arrays are read back as read-only memory maps, so a 40 GB feature matrix costs no host memory
until a column block of it is touched, and an entry can be written batch by batch
(:meth:`Cache.stream`) without ever being whole in memory.

Atomicity: an entry is written into a hidden temporary folder beside its final place and renamed
into place when complete; a reader never sees a half-written entry, and a temporary left by a
killed process is never read (the next writer of that key removes it).

Many processes (cluster jobs on a shared filesystem) can share one cache. Each key has a lock file
beside its entry (``<stage>/.<key>.lock``, :class:`filelock.FileLock`); :meth:`Cache.get` and
:meth:`Cache.get_streamed` check, compute and publish under it, so two processes that need the same
entry compute it once: the second waits, then reads. The locks rely on the filesystem's
``flock`` semantics (local disks, NFSv4, Lustre and GPFS mounted with locking).

Verified: ``entry.json`` records each file's sha256 (about a second per GB on one core). An entry of
at most :data:`VERIFY_ON_READ_BYTES` is checked against it on every read; a larger one (NSD's
feature matrices, memory-mapped) is checked on request: ``Cache(verify=True)``, or
``recon verify`` / ``recon status --verify`` for the whole cache. Entries written before the
checksums existed are read without one.

Self-healing: an entry that is damaged all the same (truncated copy, disk error, a flipped byte)
fails its size, header or checksum checks; ``get`` moves it aside to ``<stage>/.corrupt-<key>-<time>`` with a
:class:`CacheWarning` naming both folders, and computes it again. :meth:`Cache.load` on its own
raises :class:`CacheError` naming the entry.

With ``RECON_CACHE_REQUIRE_WARM=1`` in the environment (or ``require_warm=True``) a missing entry
raises :class:`ColdCacheError` naming its stage and folder instead of being computed: a book build
after a cluster run can prove that it computes nothing heavy.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from filelock import FileLock, Timeout

from .errors import ReconError
from .allocator import keep_freed_memory
from .threads import fixed_threads

MANIFEST = "entry.json"
#: arrays smaller than this are read into memory; larger ones are memory-mapped
MMAP_THRESHOLD = 1 << 20
_HASH_CHUNK = 1 << 26
#: entries up to this many bytes are checked against their checksums on every read
VERIFY_ON_READ_BYTES = 64 << 20
#: environment variable: when set (not ``0``), a cache miss raises :class:`ColdCacheError`
REQUIRE_WARM_ENV = "RECON_CACHE_REQUIRE_WARM"


class CacheError(ReconError, OSError):
    """A cache entry that exists but cannot be read back whole."""


class CacheNotWritableError(CacheError):
    """The cache's folder is read-only or forbidden, and a product it lacks must be stored."""


class CacheFullError(CacheError):
    """The disk under the cache has no room for an entry being written (nothing half-written is kept)."""


def _no_room(folder: Path, name: str, needed: int) -> CacheFullError:
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    return CacheFullError(f"no space left on the disk of the cache for {folder.parent.name}/{name}: it needs "
                          f"{needed:,} bytes and {free:,} are free under {folder.parent.parent}; free some space or "
                          f"move the cache (RECON_CACHE, or --cache)")


def _reserve(file: Path, folder: Path, name: str) -> None:
    """Allocate every block of a new (sparse) memory-mapped file now: on a full disk a write through the map would
    get SIGBUS at a page fault ("Bus error", no message); here it fails with ENOSPC, named."""
    fd = os.open(file, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise _no_room(folder, name, size) from err
            if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # no fallocate there: as before
                raise
    finally:
        os.close(fd)


class ColdCacheError(ReconError, LookupError):
    """An entry that is not in the cache while the cache is required to be warm."""


class CacheWarning(UserWarning):
    """Something in the cache was repaired: a corrupt entry moved aside to be computed again."""


def require_warm_from_env() -> bool:
    """Whether ``RECON_CACHE_REQUIRE_WARM`` asks for a warm cache (set, and not ``0``)."""
    return os.environ.get(REQUIRE_WARM_ENV, "").strip() not in ("", "0")


def file_sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_shareable(folder: Path) -> None:
    """Give a folder made by :func:`tempfile.mkdtemp` (always ``drwx------``) the mode the umask asks for,
    so that a group can share the cache."""
    folder.chmod(0o777 & ~_umask())


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
        file = self._file(name)
        try:
            array = np.lib.format.open_memmap(file, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise _no_room(self.folder, name, int(np.prod(shape)) * np.dtype(dtype).itemsize) from err
            raise
        try:
            _reserve(file, self.folder, name)
        except BaseException:
            del array  # unmapped before its folder is removed
            raise
        self._maps[name] = array
        return array

    def put(self, name: str, value) -> None:
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError(f"cache array {name!r} has dtype object; store numbers or fixed-width strings")
        try:
            np.save(self._file(name), value, allow_pickle=False)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise _no_room(self.folder, name, value.nbytes) from err
            raise

    def commit_manifest(self) -> None:
        for array in self._maps.values():
            array.flush()
        self._maps.clear()
        arrays = {}
        for name, filename in self._files.items():
            file = self.folder / filename
            arrays[name] = {"file": filename, **_read_header(file), "bytes": file.stat().st_size,
                            "sha256": file_sha256(file)}
        (self.folder / MANIFEST).write_text(json.dumps({"arrays": arrays}, indent=1))


def _read_header(file: Path) -> dict:
    with open(file, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    return {"shape": list(shape), "dtype": dtype.str, "fortran": fortran}


class Cache:
    """``root/<stage>/<key>/`` entries; see the module's docstring for atomicity, locks and repair.

    ``require_warm`` (default: the ``RECON_CACHE_REQUIRE_WARM`` environment variable) makes a
    missing entry an error instead of a computation. ``compute_threads`` is the thread count every
    computation runs on (:func:`recon.threads.fixed_threads`; None: the libraries' own). A process that
    computes keeps its freed memory for the next allocation (:func:`recon.allocator.keep_freed_memory`)."""

    def __init__(self, root, enabled: bool = True, require_warm: bool | None = None, verify: bool = False,
                 compute_threads: int | None = None):
        self.root = Path(root)
        self.compute_threads = compute_threads
        self.enabled = enabled
        self.require_warm = require_warm_from_env() if require_warm is None else require_warm
        self.verify = verify  # check every entry's checksums on read, not only small ones

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def key_path(self, stage: str, key_parts) -> Path:
        return self.path(stage, digest(stage, key_parts))

    # ------------------------------------------------------------------ reading
    def load(self, path: Path, verify: bool | None = None) -> dict[str, np.ndarray]:
        """All arrays of a complete entry; large ones as read-only memory maps.

        ``verify``: check every file's checksum (default: the cache's ``verify``, and always for an
        entry of at most :data:`VERIFY_ON_READ_BYTES`)."""
        manifest = path / MANIFEST
        try:
            listing = json.loads(manifest.read_text())["arrays"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CacheError(f"corrupt cache entry {path} (unreadable {MANIFEST}: {err}); delete it to recompute") from err
        if verify is None:
            verify = self.verify or sum(int(a.get("bytes", 0)) for a in listing.values()) <= VERIFY_ON_READ_BYTES
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
                if verify and "sha256" in expected and file_sha256(file) != expected["sha256"]:
                    raise ValueError(f"{file.name} does not match its checksum in {MANIFEST} (its bytes changed)")
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
        with self.writable():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        make_shareable(tmp)
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
        with self.writable():
            self.root.mkdir(parents=True, exist_ok=True)
            self._remove_stale_scratch()  # left by killed jobs: at NSD's size, one DPT layer is 10 GB
            tmp = self.root / f".scratch-{uuid.uuid4().hex[:12]}"
            lock_file = self.root / f"{tmp.name}.lock"
            lock = FileLock(str(lock_file))
            lock.acquire()  # held while the folder lives, so a sweeper can tell a live folder from a stale one
        try:
            tmp.mkdir()
            writer = EntryWriter(tmp)
            with self._computing():
                fill(writer)
            writer.commit_manifest()
            yield self.load(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            lock_file.unlink(missing_ok=True)
            lock.release()

    @contextmanager
    def _computing(self) -> Iterator[None]:
        """How every product is computed: on the profile's threads, with freed memory kept (same bytes, faster)."""
        keep_freed_memory()
        with fixed_threads(self.compute_threads):
            yield

    def save(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        with self.stream(path) as writer:
            for name, value in arrays.items():
                writer.put(name, value)

    # ------------------------------------------------------------------ the API
    def get(self, stage: str, key_parts, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Return the entry for ``(stage, key_parts)``, computing and storing it if absent.

        Computed once however many processes ask at the same time; a corrupt entry is moved aside
        (with a :class:`CacheWarning`) and computed again."""
        if not self.enabled:
            with self._computing():
                return compute()
        return self._get_or_write(stage, self.key_path(stage, key_parts), lambda path: self.save(path, compute()))

    def get_streamed(self, stage: str, key_parts, fill: Callable[[EntryWriter], None]) -> dict[str, np.ndarray]:
        """Like :meth:`get`, for entries too large for memory: ``fill(writer)`` writes them batch by batch.

        With the cache disabled, the entry goes to a temporary folder that is removed at exit."""
        if not self.enabled:
            tmp = Path(tempfile.mkdtemp(prefix="recon-uncached-"))
            _remove_at_exit(tmp)
            path = tmp / "entry"
            with self.stream(path) as writer, self._computing():
                fill(writer)
            return self.load(path)

        def write(path: Path) -> None:
            with self.stream(path) as writer:
                fill(writer)

        return self._get_or_write(stage, self.key_path(stage, key_parts), write)

    def _get_or_write(self, stage: str, path: Path, write: Callable[[Path], None]) -> dict[str, np.ndarray]:
        if path.is_dir():
            try:
                return self.load(path)
            except CacheError:
                pass  # repaired below, under the lock, so that only one process moves it aside
        elif self.require_warm:
            raise self._cold(stage, path)
        with self.lock(path):
            if path.is_dir():
                try:
                    return self.load(path)
                except CacheError as err:
                    self._move_aside(path, err)
            if self.require_warm:
                raise self._cold(stage, path)
            self._remove_temporaries(path)
            with self._computing():
                write(path)
        return self.load(path)

    # ------------------------------------------------------------- upkeep
    def _stage_folders(self) -> list[Path]:
        """``<root>/<stage>`` folders, in a stable order (none while the cache does not exist)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def entries(self) -> Iterator[Path]:
        """Every complete entry's folder, ``<root>/<stage>/<key>``, in a stable order."""
        for stage in self._stage_folders():
            for entry in sorted(p for p in stage.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if (entry / MANIFEST).is_file():
                    yield entry

    def check(self, path: Path) -> str | None:
        """None when the entry at ``path`` reads back whole with every checksum matching, else the reason."""
        try:
            self.load(path, verify=True)
        except CacheError as err:
            return str(err.__cause__ or err)
        return None

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move a damaged entry aside, under its lock, so that the next ``get`` computes it again."""
        with self.lock(path):
            return self._move_aside(path, CacheError(reason))

    def leftovers(self, older_than_s: float = 0.0) -> list[Path]:
        """Folders no reader will use: entries moved aside (``.corrupt-*``) and temporaries of killed writers
        (``.<key>-*``), last modified more than ``older_than_s`` ago (a live writer's temporary is recent)."""
        now = time.time()
        found = []
        for stage in self._stage_folders():
            for folder in stage.glob(".*"):
                if folder.is_dir() and now - folder.stat().st_mtime > older_than_s:
                    found.append(folder)
        found += [folder for folder in self._root_temporaries() if now - folder.stat().st_mtime > older_than_s]
        return sorted(found)

    def _root_temporaries(self) -> list[Path]:
        """Temporaries of products written at the cache's root under a lock of their own (``.toy-nsd-*`` beside
        ``.toy-nsd.lock``: a simulated NSD whose writer was killed); scratch folders have their own sweeper."""
        if not self.root.is_dir():
            return []
        return [folder for folder in self.root.glob(".*-*")
                if folder.is_dir() and not folder.name.startswith((".scratch-", ".corrupt-"))
                and self.lock_path(self.root / folder.name[1:].rsplit("-", 1)[0]).is_file()]

    def clean(self, older_than_s: float = 86400.0) -> list[Path]:
        """Remove :meth:`leftovers` older than ``older_than_s`` (default a day) and stale scratch folders."""
        removed = self.leftovers(older_than_s)
        done = []
        for folder in removed:
            if not folder.name.startswith(".corrupt-"):  # a writer's temporary: its key's lock says if it lives
                lock = FileLock(str(self.lock_path(folder.parent / folder.name[1:].rsplit("-", 1)[0])))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                lock.release()
            shutil.rmtree(folder, ignore_errors=True)
            done.append(folder)
        self._remove_stale_scratch()
        return done

    # ------------------------------------------------------------- sharing
    @staticmethod
    def lock_path(path: Path) -> Path:
        """The lock file of the entry at ``path``: ``<stage>/.<key>.lock``."""
        return path.parent / f".{path.name}.lock"

    @contextmanager
    def writable(self) -> Iterator[None]:
        """Around the cache's own writes (folders, locks, temporaries): a read-only or forbidden cache becomes one
        :class:`CacheNotWritableError` naming the cache and the way out, not a traceback from deep in a library."""
        try:
            yield
        except Timeout:
            raise
        except OSError as err:
            if not isinstance(err, PermissionError) and err.errno != errno.EROFS:
                raise
            raise CacheNotWritableError(
                f"the cache {self.root} cannot be written ({err.strerror}: {err.filename}); the products not in it "
                f"must be computed and stored, so point RECON_CACHE (or --cache) at a writable folder") from None

    @contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        """Hold the entry's lock; say so on stderr when another process holds it and this one waits."""
        with self.writable():
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.lock_path(path)))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                print(f"recon cache: waiting for another process computing {path.parent.name}/{path.name} "
                      f"(lock {self.lock_path(path)})", file=sys.stderr, flush=True)
                lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _cold(self, stage: str, path: Path) -> ColdCacheError:
        return ColdCacheError(
            f"cache miss: stage {stage!r} entry {path} is not in the cache and {REQUIRE_WARM_ENV} is set, so it is "
            "not computed here; fill the cache first (`recon run`, or the Snakemake workflow; `recon status` lists "
            "what is missing)"
        )

    def _move_aside(self, path: Path, err: Exception) -> Path:
        """Rename a corrupt entry to ``.corrupt-<key>-<time>`` beside it (kept for inspection)."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = path.parent / f".corrupt-{path.name}-{stamp}"
        n = 0
        while aside.exists():
            n += 1
            aside = path.parent / f".corrupt-{path.name}-{stamp}-{n}"
        os.rename(path, aside)
        warnings.warn(f"corrupt cache entry {path} ({err.__cause__ or err}) moved aside to {aside}; computing it again",
                      CacheWarning, stacklevel=4)
        return aside

    @staticmethod
    def _remove_temporaries(path: Path) -> None:
        """Temporaries of this key left by killed writers (called under the key's lock, so none is live)."""
        for leftover in path.parent.glob(f".{path.name}-*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)

    def _remove_stale_scratch(self) -> None:
        """Scratch folders whose owner died: each live one's lock is held by its owner."""
        for folder in self.root.glob(".scratch-*"):
            lock_file = folder.parent / f"{folder.name}.lock"
            if not folder.is_dir() or not lock_file.is_file():
                continue  # a lock file alone, or a folder of an older version of this module: left alone
            lock = FileLock(str(lock_file))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # alive
            try:
                shutil.rmtree(folder, ignore_errors=True)
                lock_file.unlink(missing_ok=True)
            finally:
                lock.release()


def _remove_at_exit(folder: Path) -> None:
    import atexit

    atexit.register(shutil.rmtree, folder, ignore_errors=True)
