"""``recon nsd fetch``: exactly the files the reader reads for some subjects, from NSD's public S3 bucket and
COCO's caption archive, resumably.

The list is the reader's own (:meth:`recon.nsd.NSDReader.files_needed`): it needs the design and the stimulus
table, so those two small files are fetched first (into a temporary folder, so that nothing is written under the
root before the sizes are known), the rest derived from them. Every file is sized by a HEAD request and the
caption files by the archive's central directory (read with a few Range requests); the sizes and their total are
printed, and a disk without room for them is refused, before anything is written. The caption files come from
COCO's 2017 annotations archive (downloaded beside the tree in ``.recon-fetch/``, the two files extracted, the
archive removed), not from the bucket.

What was fetched is recorded in ``.recon-fetch.json`` at the root (each file's size, ETag, sha256 and origin):
a later run keeps a file whose size and ETag still match the server's (one put there otherwise, whose size
does), fetches again one the server changed, and continues partials. The sha256 computed while downloading
goes into the reader's digest memo (``.recon-digests.json``), so the subjects' fingerprints are computed
without reading the files again.

The behaviour file (``responses.tsv``), which the reader reads where present to check the design against it,
is fetched too, being small beside the betas; a server without it is told, not refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import nsd_sizes
from .config import ConfigError
from .nsd import NSDReader
from .nsd_servers import TERMS, Servers
from .transfer import (CHUNK, HTTPSource, Remote, RemoteFile, S3Source, TransferError, download, partial_paths,
                       resumable_bytes)

#: what was fetched, at the root: path inside the tree -> size, ETag, sha256, origin
FETCH_MANIFEST = ".recon-fetch.json"
#: where the caption archive is downloaded, at the root (the reader never looks there)
ARCHIVE_DIR = ".recon-fetch"


@dataclass
class Item:
    """One file of the plan: where the reader reads it, where it comes from, and what there is of it already."""

    target: Path
    size: int
    origin: str
    remote: Remote | None = None  # None: a member of the caption archive
    member: str | None = None  # the archive's member it is extracted from
    etag: str | None = None  # the ETag it is recorded with (the archive's for a member)
    staged: Path | None = None  # downloaded to plan (the design files): copied into place
    state: str = "fetch"  # fetch, present, changed (on the server: fetched again)
    partial: int = 0  # bytes of it already downloaded by an earlier run


@dataclass
class Plan:
    root: Path
    items: list[Item]
    archive: Item | None  # the caption archive, where a caption file is to be extracted
    skipped: list[str] = field(default_factory=list)  # optional files the server lacks

    @property
    def to_fetch(self) -> list[Item]:
        return [i for i in self.items if i.state != "present"]

    @property
    def downloads(self) -> list[Item]:
        """What comes over the network (or from the stage): the files still to fetch but the caption files,
        and the caption archive unless a run that stopped before extracting left it whole."""
        archive = [self.archive] if self.archive is not None and self.archive.state != "present" else []
        return [i for i in self.to_fetch if i.member is None] + archive

    @property
    def bytes_to_write(self) -> int:
        """What the fetch writes at most at once: every file still to fetch (less its partial) and the archive,
        which is removed only after its members are extracted."""
        members = [i for i in self.to_fetch if i.member is not None]
        return sum(i.size - i.partial for i in self.downloads + members)


def disk_free(path: Path) -> int:
    """Free bytes on the disk that holds ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def read_manifest(root: Path) -> dict[str, dict]:
    try:
        manifest = json.loads((Path(root) / FETCH_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def human(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


# ------------------------------------------------------------------------------------------ plan
def make_plan(root: Path, subjects, n_sessions: int, servers: Servers, stage: Path, *, bucket: S3Source,
              web: HTTPSource, trials_per_session: int = 750, betas_suffix: str = ".hdf5", workers: int = 4) -> Plan:
    """Size every file the subjects need; the design files are downloaded to ``stage`` unless the root has
    them as the server does."""
    root = Path(root)
    manifest = read_manifest(root)
    reader = NSDReader(stage, trials_per_session)  # reads the design from the stage: the rest is derived from it
    design = [_relative(reader, p) for p in reader.design_files]
    design_items = [_bucket_item(root, bucket, rel, manifest, required=True) for rel in design]
    for rel, item in zip(design, design_items):
        staged = stage / rel
        if item.state == "present":
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.target, staged)
        else:
            download(item.remote, staged)
            item.staged, item.partial = staged, 0
    needed: dict[str, None] = {}
    optional: set[str] = set()
    for subject in subjects:
        for path in reader.files_needed(subject, n_sessions, betas_suffix):
            needed[_relative(reader, path)] = None
        optional |= {_relative(reader, p) for p in reader.optional_files(subject)}
    captions = {_relative(reader, reader.captions_path(split)): split for split in reader.caption_splits}

    plan = Plan(root, items=list(design_items), archive=None)
    rest = [rel for rel in needed if rel not in design and rel not in captions]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sized = list(pool.map(lambda rel: _bucket_item(root, bucket, rel, manifest, required=rel not in optional),
                              rest))
    for rel, item in zip(rest, sized):
        if item is None:
            plan.skipped.append(rel)
        else:
            plan.items.append(item)
    archive = web.head(servers.annotations_url)
    if archive is None:
        raise TransferError(f"{servers.annotations_url}: not found on the server (HTTP 404); it holds the COCO "
                            "captions the reader needs")
    plan.items += _caption_items(root, archive, captions, manifest)
    if any(i.member is not None and i.state != "present" for i in plan.items):
        target = root / ARCHIVE_DIR / Path(servers.annotations_url.split("?")[0]).name
        plan.archive = Item(target, archive.size, archive.where, remote=archive, etag=archive.etag)
        plan.archive.state = _state(plan.archive, None)  # left whole by a run that stopped before extracting
        plan.archive.partial = resumable_bytes(target, archive)
    return plan


def _relative(reader: NSDReader, path: Path) -> str:
    return path.relative_to(reader.root).as_posix()


def _bucket_item(root: Path, bucket: S3Source, rel: str, manifest: dict, required: bool) -> Item | None:
    remote = bucket.head(rel)
    if remote is None:
        if required:
            raise TransferError(f"{bucket.where(rel)}: not found on the server (HTTP 404); the reader needs it")
        return None
    item = Item(root / rel, remote.size, remote.where, remote=remote, etag=remote.etag)
    item.state = _state(item, manifest.get(rel))
    if item.state != "present":
        item.partial = resumable_bytes(item.target, remote)
    return item


def _state(item: Item, recorded: dict | None) -> str:
    """present: the file is there with the server's size (and, where this fetcher wrote it, the server's ETag);
    changed: the server's copy changed since it was fetched; fetch otherwise."""
    if not item.target.is_file() or item.target.stat().st_size != item.size:
        return "fetch"
    if isinstance(recorded, dict) and recorded.get("etag") != item.etag:
        return "changed"
    return "present"


def _caption_items(root: Path, archive: Remote, captions: dict[str, str], manifest: dict) -> list[Item]:
    """The caption files of the stimulus table's COCO splits, sized from the archive's central directory."""
    try:
        with zipfile.ZipFile(RemoteFile(archive)) as listing:
            members = {info.filename: info.file_size for info in listing.infolist()}
    except zipfile.BadZipFile as err:
        raise TransferError(f"{archive.where}: not a zip archive ({err})") from err
    items = []
    for rel, split in captions.items():
        member = f"annotations/captions_{split}.json"
        if member not in members:
            raise TransferError(f"{archive.where} has no {member} (the stimulus table's COCO split {split!r}); it has "
                                f"{', '.join(sorted(members))}")
        item = Item(root / rel, members[member], f"{archive.where}#{member}", member=member, etag=archive.etag)
        item.state = _state(item, manifest.get(rel))
        items.append(item)
    return items


def describe(plan: Plan, free: int, say: Callable[[str], None]) -> None:
    width = max(len(human(i.size)) for i in plan.items)
    for item in plan.items:
        rel = item.target.relative_to(plan.root).as_posix()
        notes = {"present": ["present, kept"], "changed": ["changed on the server: fetched again"],
                 "fetch": [f"{human(item.partial)} there, continued"] if item.partial else []}[item.state]
        if item.state != "present" and item.remote is not None and item.etag and item.remote.md5 is None:
            notes.append("multipart upload: checked by size alone")  # its ETag is no MD5 of the content
        say(f"  {human(item.size):>{width}}  {rel}" + (f"  ({'; '.join(notes)})" if notes else ""))
    if plan.archive is not None:
        say(f"  {human(plan.archive.size):>{width}}  {plan.archive.target.relative_to(plan.root).as_posix()}  "
            f"({plan.archive.origin}, removed once its caption files are extracted"
            + (f"; {human(plan.archive.partial)} there, continued)" if plan.archive.partial else ")"))
    for rel in plan.skipped:
        say(f"  {'-':>{width}}  {rel}  (optional, not on the server: the reader goes without it)")
    need = plan.bytes_to_write
    total = sum(i.size for i in plan.items)
    say(f"{len(plan.items)} files, {human(total)} ({total:,} bytes); to write: {len(plan.to_fetch)} files"
        + (" and the caption archive" if plan.archive else "") + f", {human(need)} ({need:,} bytes); "
        f"free at {plan.root}: {human(free)}")


#: how far the server's total may stray from recon.nsd_sizes' before the dry run says so (its estimates of the small
#: files and of HDF5's chunk index are each well within this)
MODEL_TOLERANCE = 0.05


def modelled_total(plan: Plan, subjects, n_sessions: int, trials_per_session: int, betas_suffix: str) -> str | None:
    """A line comparing the plan's total with what NSD's published shapes give for the same files
    (:mod:`recon.nsd_sizes`); None where the files are not NSD's at its shapes (other sessions' lengths, NIfTI
    betas, a subject the model lacks)."""
    shapes = nsd_sizes.NSD
    if trials_per_session != shapes.trials_per_session or betas_suffix != ".hdf5" or not set(subjects) <= set(
            shapes.grids) or any(n_sessions > shapes.sessions_done[s] for s in subjects):
        return None
    model = nsd_sizes.tree_files(shapes, subjects, n_sessions)
    listed = {i.target.relative_to(plan.root).as_posix(): i.size for i in plan.items}
    if not set(listed) <= set(model):
        return None
    expected, total = sum(model[rel] for rel in listed), sum(listed.values())
    differs = total / expected - 1
    line = f"NSD's published shapes give these files {human(expected)} (recon.nsd_sizes): the server's total is "
    if abs(differs) <= MODEL_TOLERANCE:
        return line + f"within {MODEL_TOLERANCE:.0%} of it ({differs:+.1%})"
    return line + (f"{differs:+.1%} off it, more than the {MODEL_TOLERANCE:.0%} the model allows: the server's files "
                   "are not NSD's as its data manual describes them")


def check_room(plan: Plan, free: int) -> None:
    need = plan.bytes_to_write
    if need > free:
        raise TransferError(f"not enough disk for {plan.root}: this fetch writes {human(need)} ({need:,} bytes) and "
                            f"the disk has {human(free)} free, {human(need - free)} short; free some space or "
                            "choose another --root")


# ----------------------------------------------------------------------------------------- fetch
def fetch(root, subjects, n_sessions: int, servers: Servers = Servers(), *, dry_run: bool = False, workers: int = 4,
          progress: bool = False, trials_per_session: int = 750, betas_suffix: str = ".hdf5",
          free_space: Callable[[Path], int] = disk_free, say: Callable[[str], None] = print,
          chunk_size: int = CHUNK, retries: int = 2) -> Plan:
    """Fetch every file the reader reads for ``subjects``' first ``n_sessions`` sessions into ``root`` (see the
    module's text); with ``dry_run``, size them, check the disk and write nothing. ``free_space`` measures the
    disk (a test's stand-in shows a small one). Returns the plan."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    root = Path(root)
    say(TERMS)
    bucket = S3Source(servers.bucket, servers.endpoint_url, servers.region, max_connections=2 * workers)
    web = HTTPSource()
    with tempfile.TemporaryDirectory(prefix="recon-nsd-design-") as stage:
        plan = make_plan(root, subjects, n_sessions, servers, Path(stage), bucket=bucket, web=web,
                         trials_per_session=trials_per_session, betas_suffix=betas_suffix, workers=workers)
        free = free_space(root)
        say(f"{', '.join(subjects)}, {n_sessions} sessions (betas as {betas_suffix}), from "
            f"{bucket.where('')} and {servers.annotations_url}, into {root}:")
        describe(plan, free, say)
        if (note := modelled_total(plan, subjects, n_sessions, trials_per_session, betas_suffix)) is not None:
            say(note)
        check_room(plan, free)
        if dry_run:
            say("dry run: nothing written")
            return plan
        _execute(plan, workers=workers, progress=progress, chunk_size=chunk_size, retries=retries)
    reader = NSDReader(root, trials_per_session)
    for subject in subjects:
        say(f"{subject}: fingerprint {reader.fingerprint(subject, n_sessions)} (digests in .recon-digests.json)")
    say(f"fetched {len(plan.to_fetch)} files into {root}; check them with: recon nsd check --root {root} "
        + " ".join(f"--subject {s}" for s in subjects) + f" --sessions {n_sessions}")
    return plan


def _execute(plan: Plan, *, workers: int, progress: bool, chunk_size: int, retries: int) -> None:
    from tqdm.auto import tqdm

    _writing(plan.root, lambda: plan.root.mkdir(parents=True, exist_ok=True))
    record = _Recorder(plan.root)
    digests: dict[Path, str] = {}
    bar = tqdm(total=sum(i.size - i.partial for i in plan.downloads), unit="B", unit_scale=True,
               disable=not progress, desc="fetch")

    def one(item: Item) -> None:
        if item.staged is not None:
            sha256 = _writing(item.target, lambda: _install(item.staged, item.target))
            bar.update(item.size)
        else:
            sha256 = download(item.remote, item.target, bar.update, chunk_size=chunk_size, retries=retries)
        if item is not plan.archive:
            digests[item.target] = sha256
            _writing(plan.root / FETCH_MANIFEST, lambda: record(item, sha256))

    errors = []
    try:
        with bar, ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(one, item) for item in plan.downloads]
            for future in as_completed(futures):
                if not future.cancelled() and future.exception() is not None:
                    errors.append(future.exception())
                    for other in futures:  # what has begun finishes (its bytes are kept); nothing new begins
                        other.cancel()
        if errors:
            more = f" (and {len(errors) - 1} more failed)" if len(errors) > 1 else ""
            raise TransferError(f"{errors[0]}{more}; what arrived is kept: run the same command again to continue")
        members = [i for i in plan.to_fetch if i.member is not None]
        for item in members:
            digests[item.target] = _extract(plan.archive.target, item)
            record(item, digests[item.target])
        if members:
            plan.archive.target.unlink()
            _remove_if_empty(plan.archive.target.parent)
    finally:  # what did arrive need not be read again for the fingerprint
        NSDReader(plan.root).remember_digests(digests)


def _writing(path: Path, write: Callable[[], object]):
    """``write()``, a local write, with an error that names ``path`` and the cause in one line."""
    try:
        return write()
    except TransferError:
        raise
    except OSError as err:
        raise TransferError(f"cannot write {err.filename or path}: {err.strerror or err}") from err


def _install(staged: Path, target: Path) -> str:
    """Copy a file downloaded to plan into its place, through a partial beside it (replacing one an interrupted
    download left there, and its note)."""
    part, note = partial_paths(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(staged, part)
    os.replace(part, target)
    note.unlink(missing_ok=True)
    return _sha256(target)


def _extract(archive: Path, item: Item) -> str:
    """Extract one caption file through a partial beside its target; the archive's CRC checks the bytes."""
    part = item.target.with_name(f".{item.target.name}.part")
    sha256 = hashlib.sha256()
    try:
        item.target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as source, source.open(item.member) as member, open(part, "wb") as out:
            while block := member.read(CHUNK):
                out.write(block)
                sha256.update(block)
    except zipfile.BadZipFile as err:  # a damaged archive: downloaded again by the next run
        part.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)
        raise TransferError(f"cannot extract {item.member} from {item.origin.split('#')[0]}: {err}; the archive "
                            "was removed, run again") from err
    except OSError as err:
        part.unlink(missing_ok=True)
        raise TransferError(f"cannot write {err.filename or part}: {err.strerror or err}") from err
    size = part.stat().st_size
    if size != item.size:
        part.unlink()
        raise TransferError(f"{item.origin}: extracted {size:,} bytes, the archive lists {item.size:,}")
    os.replace(part, item.target)
    return sha256.hexdigest()


def _sha256(path: Path) -> str:
    from .cache import file_sha256

    return file_sha256(path)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


class _Recorder:
    """Writes ``.recon-fetch.json`` after each file, so that an interrupted run's finished files count."""

    def __init__(self, root: Path):
        self.path = root / FETCH_MANIFEST
        self.manifest = read_manifest(root)
        self.root = root
        self.lock = threading.Lock()

    def __call__(self, item: Item, sha256: str) -> None:
        with self.lock:
            self.manifest[item.target.relative_to(self.root).as_posix()] = {
                "size": item.size, "etag": item.etag, "sha256": sha256, "from": item.origin}
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.manifest, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, self.path)
