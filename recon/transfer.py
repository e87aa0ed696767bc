"""Resumable downloads of single files from an S3 bucket or an HTTP server, never half-written at their name.

A file is first sized (a HEAD request: its length and ETag), then downloaded to ``.NAME.part`` beside its
target, with ``.NAME.part.json`` beside that naming the ETag the bytes belong to. A later run continues a
partial of the same ETag with a Range request and starts again from zero otherwise. Once whole, the size is
checked and, where the ETag is a single-part upload's (the MD5 of the content), the content too; a multipart
upload's ETag (``<hash>-<parts>``) is no MD5 of the file, so those files are checked by size alone. Then the
partial is renamed onto the target (``os.replace``: atomic within a filesystem).

The S3 client sends unsigned (anonymous) requests: NSD's bucket is public, and a user needs no AWS account.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ReconError

#: bytes read from the network and written at a time
CHUNK = 1 << 20
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


class TransferError(ReconError, OSError):
    """A file that could not be sized, downloaded, checked or written; the message names it and the cause."""


class _Interrupted(TransferError):
    """The connection broke mid-transfer: worth another try, which continues from the partial."""


@dataclass(frozen=True)
class Remote:
    """One file on a server, as its HEAD request described it."""

    source: "S3Source | HTTPSource"
    key: str  # the object's key in the bucket, or the URL
    size: int
    etag: str | None  # without its quotes

    @property
    def where(self) -> str:
        return self.source.where(self.key)

    @property
    def md5(self) -> str | None:
        """The content's MD5 where the ETag is one (a single-part upload), else None: check the size alone."""
        return self.etag if self.etag and _MD5_ETAG.match(self.etag) else None


def _unquote(etag: str | None) -> str | None:
    return etag.strip().removeprefix("W/").strip('"') if etag else None


# ------------------------------------------------------------------------------------------- S3
class S3Source:
    """Objects of one bucket, read with unsigned requests (``endpoint_url``: a mirror or a test server)."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str | None = None,
                 max_connections: int = 10):
        try:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config
        except ImportError as err:
            raise TransferError("fetching NSD needs boto3: pip install 'recon[nsd]' (or boto3)") from err
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        config = Config(signature_version=UNSIGNED, max_pool_connections=max_connections,
                        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=20, read_timeout=60)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def head(self, key: str) -> Remote | None:
        """The object's size and ETag, or None where the server has no such object."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if _s3_status(err) == 404:
                return None
            raise self._error(err, key) from err
        except Exception as err:
            raise self._error(err, key) from err
        return Remote(self, key, int(response["ContentLength"]), _unquote(response.get("ETag")))

    def read(self, key: str, start: int, etag: str | None, end: int | None = None,
             chunk_size: int = CHUNK) -> tuple[int, Iterator[bytes]]:
        """(offset of the first byte served, the bytes from there to ``end`` inclusive or the end)."""
        options = {"IfMatch": f'"{etag}"'} if etag else {}
        if start or end is not None:
            options["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, **options)
        except Exception as err:
            raise self._error(err, key) from err
        return start, self._chunks(response["Body"], key, chunk_size)

    def _chunks(self, body, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        except Exception as err:
            raise self._error(err, key) from err

    def _error(self, err: Exception, key: str) -> TransferError:
        from botocore.exceptions import ClientError

        where = self.where(key)
        if not isinstance(err, ClientError):
            return _Interrupted(f"{where}: the connection failed: {type(err).__name__}: {err}")
        status = _s3_status(err)
        if status == 403:
            return TransferError(
                f"{where}: access denied (HTTP 403). NSD's bucket is read with anonymous (unsigned) requests, and a "
                "403 means the object is not public there or not there at all (S3 answers 403 for a missing key "
                "where listing is denied): check --bucket and --endpoint-url, or use a mirror")
        if status == 412:
            return TransferError(f"{where}: changed on the server while being fetched; run again")
        return TransferError(f"{where}: {err.response.get('Error', {}).get('Code', '?')} (HTTP {status}): {err}")


def _s3_status(err) -> int | None:
    return err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


# ------------------------------------------------------------------------------------------ HTTP
class HTTPSource:
    """Files served over HTTP(S); the key is the URL."""

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout

    def where(self, key: str) -> str:
        return key

    def head(self, url: str) -> Remote | None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=self.timeout) as response:
                length = response.headers.get("Content-Length")
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise _http_error(err, url) from err
        except (OSError, http.client.HTTPException) as err:
            raise _http_error(err, url) from err
        if length is None:
            raise TransferError(f"{url}: the server does not say the file's size (no Content-Length)")
        return Remote(self, url, int(length), _unquote(etag))

    def read(self, url: str, start: int, etag: str | None, end: int | None = None,
             chunk_size: int = CHUNK) -> tuple[int, Iterator[bytes]]:
        """(offset of the first byte served: ``start``, or 0 where the server ignores the range or the file
        changed, the bytes from there)."""
        request = urllib.request.Request(url)
        if start or end is not None:
            request.add_header("Range", f"bytes={start}-{'' if end is None else end}")
            if etag:  # a file changed since: the server sends it whole (200), not the range
                request.add_header("If-Range", f'"{etag}"')
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except (OSError, http.client.HTTPException) as err:
            raise _http_error(err, url) from err
        offset = start if response.status == 206 else 0
        return offset, self._chunks(response, url, chunk_size)

    @staticmethod
    def _chunks(response, url: str, chunk_size: int) -> Iterator[bytes]:
        with response:
            try:
                while block := response.read(chunk_size):
                    yield block
            except (OSError, http.client.HTTPException) as err:
                raise _Interrupted(f"{url}: the connection broke: {type(err).__name__}: {err}") from err


def _http_error(err: Exception, url: str) -> TransferError:
    if isinstance(err, urllib.error.HTTPError):
        return TransferError(f"{url}: HTTP {err.code} {err.reason}")
    return _Interrupted(f"{url}: the connection failed: {type(err).__name__}: {err}")


class RemoteFile(io.RawIOBase):
    """A file on a server read in place by Range requests: enough for :mod:`zipfile` to list an archive's members
    (their sizes) from its central directory without downloading it."""

    def __init__(self, remote: Remote):
        self.remote = remote
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.remote.size}[whence]
        self.position = base + offset
        return self.position

    def readinto(self, buffer) -> int:
        end = min(self.position + len(buffer), self.remote.size)
        if end <= self.position:
            return 0
        offset, blocks = self.remote.source.read(self.remote.key, self.position, self.remote.etag, end - 1)
        data = b"".join(blocks)
        if offset != self.position:
            raise TransferError(f"{self.remote.where}: the server ignores Range requests (answered with the whole "
                                "file), which a resumable fetch needs")
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


# -------------------------------------------------------------------------------------- download
def partial_paths(target: Path) -> tuple[Path, Path]:
    """The partial download beside ``target`` and the note of the ETag its bytes belong to."""
    part = target.with_name(f".{target.name}.part")
    return part, part.with_name(part.name + ".json")


def resumable_bytes(target: Path, remote: Remote) -> int:
    """How many bytes of ``remote`` a partial beside ``target`` already holds (0: none, or of another version)."""
    part, note = partial_paths(target)
    try:
        written = json.loads(note.read_text())
        size = part.stat().st_size
    except (OSError, ValueError):
        return 0
    if written != {"etag": remote.etag, "size": remote.size, "from": remote.where} or size > remote.size:
        return 0
    return size


def download(remote: Remote, target: Path, advance: Callable[[int], None] = lambda n: None,
             chunk_size: int = CHUNK, retries: int = 2) -> str:
    """Download ``remote`` to ``target`` through a partial beside it, continuing one left by an earlier run or
    try; check it; rename it onto ``target``. Returns the file's sha256. A broken connection is tried again
    ``retries`` times, each continuing from the partial, which stays for the next run if the last fails."""
    for attempt in range(retries + 1):
        try:
            return _download_once(remote, target, advance, chunk_size)
        except _Interrupted:
            if attempt == retries:
                raise


def _download_once(remote: Remote, target: Path, advance: Callable[[int], None], chunk_size: int) -> str:
    part, note = partial_paths(target)
    start = resumable_bytes(target, remote)
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if start:
            with open(part, "rb") as f:  # the bytes already there count towards both digests
                while block := f.read(chunk_size):
                    sha256.update(block)
                    md5.update(block)
        else:
            _write_note(note, {"etag": remote.etag, "size": remote.size, "from": remote.where})
        if start < remote.size:
            offset, blocks = remote.source.read(remote.key, start, remote.etag, chunk_size=chunk_size)
            if offset != start:  # the server sent the file whole: begin again
                sha256, md5 = hashlib.sha256(), hashlib.md5()
            with open(part, "r+b" if offset else "wb") as out:
                out.seek(offset)
                out.truncate()
                for block in blocks:
                    out.write(block)
                    sha256.update(block)
                    md5.update(block)
                    advance(len(block))
    except PermissionError as err:
        raise TransferError(f"cannot write {err.filename or part}: permission denied") from err
    except TransferError:
        raise
    except OSError as err:
        raise TransferError(f"cannot write {part} ({remote.where}): {err}") from err
    size = part.stat().st_size
    if size < remote.size:
        raise _Interrupted(f"{remote.where}: {size:,} of {remote.size:,} bytes arrived; {part} keeps them and the "
                           "next try continues it")
    if size > remote.size or (remote.md5 and md5.hexdigest() != remote.md5):
        part.unlink()
        note.unlink(missing_ok=True)
        found = f"{size:,} bytes" if size > remote.size else f"MD5 {md5.hexdigest()}"
        raise TransferError(f"{remote.where}: the download has {found}, but the server lists {remote.size:,} bytes, "
                            f"ETag {remote.etag}: removed, run again")
    os.replace(part, target)
    note.unlink(missing_ok=True)
    return sha256.hexdigest()


def _write_note(note: Path, content: dict) -> None:
    tmp = note.with_name(f"{note.name}.{os.getpid()}")
    tmp.write_text(json.dumps(content))
    os.replace(tmp, note)
