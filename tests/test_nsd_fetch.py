"""`recon nsd fetch` and `recon nsd check` against real servers started here: moto's S3 server holding the
hand-written mini NSD (conftest.MiniNSD) in the bucket's layout, and an HTTP server with Range requests serving a
COCO-like annotations archive. Nothing of the client is mocked; a TCP proxy in front of the S3 server cuts a
transfer mid-file the way a network does."""

import contextlib
import hashlib
import io
import json
import logging
import re
import socket
import threading
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import conftest
from conftest import LABELS, N_SESSIONS, N_STIMULI, TRIALS_PER_SESSION, MiniNSD

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from recon import cli  # noqa: E402
from recon import nsd_sizes  # noqa: E402
from recon.nsd import DIGEST_MEMO, NSDReader  # noqa: E402
from recon.nsd_fetch import ARCHIVE_DIR, FETCH_MANIFEST, Item, Plan, fetch, modelled_total  # noqa: E402
from recon.nsd_servers import Servers  # noqa: E402
from recon.transfer import TransferError  # noqa: E402

CAPTIONS = "nsddata_stimuli/stimuli/nsd/annotations/"
STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
ROI = "nsddata/ppdata/subj01/func1pt8mm/roi/streams.nii.gz"
BETAS_2 = "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5"


# ------------------------------------------------------------------------------------ the servers
@pytest.fixture(scope="module")
def s3_url():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class ArchiveHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` with HEAD, Range (``bytes=a-`` / ``bytes=a-b``), If-Range and an MD5 ETag; a path
    in ``server.cut_after`` gets that many bytes of its next GET's body, then the connection drops; one in
    ``server.etags`` is served with that ETag."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self.serve(body=False)

    def do_GET(self):
        self.serve(body=True)

    def serve(self, body: bool):
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        etag = self.server.etags.get(self.path, hashlib.md5(data).hexdigest())
        start, end, status = 0, len(data) - 1, 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if wanted and self.headers.get("If-Range", f'"{etag}"').strip('"') == etag:
            start, status = int(wanted[1]), 206
            end = min(int(wanted[2]), end) if wanted[2] else end
        self.server.log.append((self.command, self.path, self.headers.get("Range")))
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if not body:
            return
        whole = not wanted or not wanted[2]  # a download, not a read of the central directory
        cut = self.server.cut_after.pop(self.path, None) if whole else None
        self.wfile.write(data[start : end + 1] if cut is None else data[start : start + cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    server.files, server.cut_after, server.log, server.etags = {}, {}, [], {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


class CuttingProxy:
    """A TCP proxy in front of the S3 server. Armed with a key, it cuts the connection carrying a GET of that key
    after ``after`` bytes of the response's body and then refuses every connection (a server gone mid-file),
    until disarmed. It keeps each request's head."""

    def __init__(self, upstream: str):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.key, self.after, self.down, self.heads = None, 0, False, []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, key: str, after: int):
        self.key, self.after, self.down = key, after, False

    def disarm(self):
        self.key, self.down = None, False

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            state = {"cut": False}
            threading.Thread(target=self._requests, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, state), daemon=True).start()

    def _requests(self, client, upstream, state):
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                for head in re.findall(rb"(?:GET|HEAD|PUT) [^\r]*\r\n(?:[^\r]+\r\n)*", data):
                    self.heads.append(head.decode())
                    if self.key and head.startswith(b"GET ") and self.key.encode() in head.split(b" ")[1]:
                        state["cut"] = True
                upstream.sendall(data)
        _close(client, upstream)

    def _responses(self, upstream, client, state):
        buffered, sent = b"", 0
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if not state["cut"]:
                    client.sendall(data)
                    continue
                buffered += data
                head, _, body = buffered.partition(b"\r\n\r\n")
                if len(body) < self.after:
                    continue
                client.sendall(head + b"\r\n\r\n" + body[: self.after])
                self.down = True
                break
        _close(client, upstream)

    def close(self):
        self.listener.close()


def _close(*sockets):
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()


# ------------------------------------------------------------------------------ the simulated NSD
def archive_bytes(source: MiniNSD) -> bytes:
    """COCO's annotations archive in small: the two caption files and a member that is not needed."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for split in ("train2017", "val2017"):
            z.writestr(f"annotations/captions_{split}.json", source.captions_path(split).read_bytes())
        z.writestr("annotations/instances_val2017.json", json.dumps({"annotations": list(range(3000))}))
    return out.getvalue()


class World:
    """A source tree, a bucket holding it (the captions left out: they come from the archive) and the archive."""

    def __init__(self, tmp_path: Path, s3_url: str, web):
        self.source = MiniNSD(tmp_path / "source", betas_format="hdf5")
        self.source.write_behaviour("subj01")  # subj02 has none: the optional file absent
        self.bucket = f"nsd-{uuid.uuid4().hex[:12]}"
        self.s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-2", aws_access_key_id="test",
                               aws_secret_access_key="test")
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
        for path in sorted(self.source.root.rglob("*")):
            key = path.relative_to(self.source.root).as_posix()
            if path.is_file() and not key.startswith(CAPTIONS):
                self.upload(key, path.read_bytes(), multipart=key == STIMULI)
        self.archive_path = f"/{self.bucket}/annotations_trainval2017.zip"
        web.files[self.archive_path] = archive_bytes(self.source)
        self.web = web
        self.servers = Servers(bucket=self.bucket, endpoint_url=s3_url, region="us-east-2",
                               annotations_url=f"http://127.0.0.1:{web.server_address[1]}{self.archive_path}")
        self.root = tmp_path / "nsd"

    def upload(self, key: str, data: bytes, multipart: bool = False, public: bool = True):
        acl = {"ACL": "public-read"} if public else {}
        if not multipart:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **acl)
            return
        # a multipart upload: its ETag is no MD5 of the file ("<hash>-1"), as NSD's large files' are
        upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, **acl)
        part = self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data)
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"],
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})

    def fetch(self, subjects=("subj01",), servers=None, **options):
        lines = []
        options = {"trials_per_session": TRIALS_PER_SESSION, "chunk_size": 256, "say": lines.append} | options
        plan = fetch(self.root, list(subjects), N_SESSIONS, servers or self.servers, **options)
        return plan, "\n".join(lines)

    def used(self, subject="subj01") -> list[str]:
        reader = NSDReader(self.source.root, TRIALS_PER_SESSION)
        return [p.relative_to(self.source.root).as_posix() for p in reader.files_used(subject, N_SESSIONS)]


@pytest.fixture
def world(tmp_path, s3_url, web):
    return World(tmp_path, s3_url, web)


def tree_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def run_cli(*argv, monkeypatch) -> tuple[int, str, str]:
    """The command line with the nsd profile's sessions of the mini tree's 4 trials, not NSD's 750."""
    real = cli.get_profile
    monkeypatch.setattr(cli, "get_profile", lambda *a, **k: real(*a, **k).replace(trials_per_session=4))
    return conftest.run_cli(*argv)


def server_flags(world) -> list[str]:
    s = world.servers
    return ["--bucket", s.bucket, "--endpoint-url", s.endpoint_url, "--annotations-url", s.annotations_url]


# ------------------------------------------------------------------------------------------ tests
def test_a_subject_is_fetched_exactly_and_reads_as_the_source_does(world):
    plan, said = world.fetch(workers=4)
    assert "naturalscenesdataset.org" in said  # the terms, before anything
    used = world.used("subj01")
    # exactly the reader's files (not the bucket's nsdgeneral.nii.gz, nor subj02's), beside the two records
    assert tree_files(world.root) == set(used) | {FETCH_MANIFEST, DIGEST_MEMO}
    assert not (world.root / ARCHIVE_DIR).exists()  # the archive went once its members were out
    for rel in used:
        assert (world.root / rel).read_bytes() == (world.source.root / rel).read_bytes(), rel
    manifest = json.loads((world.root / FETCH_MANIFEST).read_text())
    assert {rel: manifest[rel]["sha256"] for rel in used} == {
        rel: hashlib.sha256((world.root / rel).read_bytes()).hexdigest() for rel in used}
    assert manifest[STIMULI]["etag"].endswith("-1")  # multipart: checked by size, and the plan says so
    assert re.search(rf"{re.escape(STIMULI)}  \(multipart upload: checked by size alone\)", said)
    fetched, source = NSDReader(world.root, TRIALS_PER_SESSION), NSDReader(world.source.root, TRIALS_PER_SESSION)
    # the digests came from the download: the fingerprint matched without hashing, and equals the source tree's
    assert fetched.fingerprint("subj01", N_SESSIONS) == source.fingerprint("subj01", N_SESSIONS)
    a = fetched.load_subject("subj01", ["early", "ventral"], N_SESSIONS)
    b = source.load_subject("subj01", ["early", "ventral"], N_SESSIONS)
    np.testing.assert_array_equal(a.train_betas, b.train_betas)
    assert fetched.captions([0, 1]) == source.captions([0, 1])
    # a second run finds everything there and writes nothing
    _, again = world.fetch()
    assert "to write: 0 files, 0 B" in again and "(present, kept)" in again


def test_a_dry_run_sizes_every_file_as_the_server_does_and_writes_nothing(world):
    plan, said = world.fetch(subjects=("subj01", "subj02"), dry_run=True)
    assert not world.root.exists()
    listed = {o["Key"]: o["Size"] for o in world.s3.list_objects_v2(Bucket=world.bucket)["Contents"]}
    with zipfile.ZipFile(io.BytesIO(world.web.files[world.archive_path])) as z:
        members = {CAPTIONS + Path(i.filename).name: i.file_size for i in z.infolist()}
    sizes = {i.target.relative_to(world.root).as_posix(): i.size for i in plan.items}
    assert sizes == {rel: listed.get(rel, members.get(rel)) for rel in set(world.used("subj01") + world.used("subj02"))}
    assert plan.archive.size == len(world.web.files[world.archive_path])
    total = sum(sizes.values()) + plan.archive.size
    assert f"to write: {len(sizes)} files and the caption archive, " in said and f"({total:,} bytes)" in said
    assert "nsddata/ppdata/subj02/behav/responses.tsv  (optional, not on the server" in said
    assert "dry run: nothing written" in said
    assert "recon.nsd_sizes" not in said  # 4-trial sessions are not NSD's: no model to compare with


def test_the_size_model_gives_the_sizes_the_dry_run_reads_from_the_server(world):
    """recon.nsd_sizes at the served tree's shapes: the same files as the dry run lists, the HDF5 arrays (betas
    contiguous as h5py writes them, stimuli chunked per image) of the bytes their shapes and dtypes give plus the
    HDF5 overhead it states, the ROI atlas within its uncompressed bound; the small files are stated, not modelled."""
    plan, _ = world.fetch(subjects=("subj01", "subj02"), dry_run=True)
    served = {i.target.relative_to(world.root).as_posix(): i.size for i in plan.items}
    small = {"expdesign": served["nsddata/experiments/nsd/nsd_expdesign.mat"],
             "stim_info": served["nsddata/experiments/nsd/nsd_stim_info_merged.csv"],
             "ctab": served["nsddata/freesurfer/fsaverage/label/streams.mgz.ctab"],
             "behaviour": served["nsddata/ppdata/subj01/behav/responses.tsv"],
             **{f"captions_{s}": served[f"{CAPTIONS}captions_{s}.json"] for s in ("train2017", "val2017")}}
    mini = nsd_sizes.TreeShapes(grids={s: labels.shape for s, labels in LABELS.items()},
                                trials_per_session=TRIALS_PER_SESSION, stimuli=(N_STIMULI, 4, 5, 3),
                                sessions_done={s: N_SESSIONS for s in LABELS}, small=small,
                                betas_chunked_by_voxel=False, stimuli_chunks=(1, 4, 5, 3))
    modelled = nsd_sizes.tree_files(mini, ["subj01", "subj02"], N_SESSIONS)
    assert set(modelled) == set(served) | set(plan.skipped)  # subj02's responses.tsv: the server lacks it
    betas = [rel for rel in served if "betas_session" in rel]
    assert len(betas) == 2 * N_SESSIONS and {rel: served[rel] for rel in betas} == {rel: modelled[rel] for rel in betas}
    assert 0 <= served[STIMULI] - modelled[STIMULI] <= nsd_sizes.SMALL_FILE_SLACK, (served[STIMULI], modelled[STIMULI])
    assert served[ROI] <= modelled[ROI]


def test_the_dry_run_compares_a_listing_at_nsds_shapes_with_the_size_model(tmp_path):
    model = nsd_sizes.subject_files(nsd_sizes.NSD, "subj01", 37)

    def listing(scale: float) -> Plan:
        return Plan(tmp_path, [Item(tmp_path / rel, round(size * scale), "s3://bucket") for rel, size in model.items()],
                    archive=None)

    assert modelled_total(listing(1.0), ["subj01"], 37, 750, ".hdf5") == (
        "NSD's published shapes give these files 80.54 GB (recon.nsd_sizes): the server's total is within 5% of it "
        "(+0.0%)")
    assert "+10.0% off it, more than the 5% the model allows" in modelled_total(listing(1.1), ["subj01"], 37, 750,
                                                                               ".hdf5")
    assert modelled_total(listing(1.0), ["subj01"], 37, 750, ".nii.gz") is None  # NIfTI betas: gzip, not modelled
    assert modelled_total(listing(1.0), ["subj03"], 37, 750, ".hdf5") is None  # a subject the model lacks


def test_a_disk_too_small_is_refused_before_anything_is_written(world):
    plan, _ = world.fetch(dry_run=True)
    need = plan.bytes_to_write
    with pytest.raises(TransferError, match=rf"this fetch writes .*\({need:,} bytes\) and the disk has .* free, "
                                            r"1 B short; free some space or choose another --root"):
        world.fetch(free_space=lambda path: need - 1)
    assert not world.root.exists()
    world.fetch(free_space=lambda path: need)  # exactly enough is enough


def test_a_transfer_cut_mid_file_is_continued_by_the_next_run(world, s3_url):
    proxy = CuttingProxy(s3_url)
    servers = Servers(world.bucket, proxy.url, "us-east-2", world.servers.annotations_url)
    size = (world.source.root / STIMULI).stat().st_size
    proxy.arm(STIMULI, after=2000)  # the server goes away 2000 bytes into the stimuli
    with pytest.raises(TransferError, match=r"nsd_stimuli\.hdf5.*run the same command again to continue"):
        world.fetch(servers=servers, workers=1, retries=0)
    assert not (world.root / STIMULI).exists()  # never a half file where the reader reads
    part = world.root / "nsddata_stimuli/stimuli/nsd/.nsd_stimuli.hdf5.part"
    kept = part.stat().st_size
    assert 0 < kept <= 2000 < size
    proxy.disarm()  # the server is back
    proxy.heads.clear()
    plan, said = world.fetch(servers=servers)
    assert f"{STIMULI}  ({kept / 1000:.2f} kB there, continued; multipart upload: checked by size alone)" in said
    ranges = [h for h in proxy.heads if h.startswith(f"GET /{world.bucket}/{STIMULI}")]
    assert len(ranges) == 1 and re.search(rf"(?i)range: bytes={kept}-\r\n", ranges[0])
    assert (world.root / STIMULI).read_bytes() == (world.source.root / STIMULI).read_bytes()
    assert not part.exists()
    assert NSDReader(world.root, TRIALS_PER_SESSION).fingerprint("subj01", N_SESSIONS) == \
        NSDReader(world.source.root, TRIALS_PER_SESSION).fingerprint("subj01", N_SESSIONS)
    proxy.close()


def test_an_archive_cut_mid_file_is_continued_within_the_run(world):
    world.web.log.clear()
    world.web.cut_after[world.archive_path] = 700  # the first GET of the archive drops after 700 bytes
    world.fetch(retries=1)
    gets = [rng for method, path, rng in world.web.log if method == "GET" and path == world.archive_path]
    assert gets[-2] is None and 0 < int(re.fullmatch(r"bytes=(\d+)-", gets[-1])[1]) <= 700  # continued
    assert (world.root / CAPTIONS / "captions_train2017.json").read_bytes() == \
        world.source.captions_path("train2017").read_bytes()


def test_check_names_a_file_damaged_on_the_server_or_on_disk(world, monkeypatch):
    flags = ["--root", world.root, "--subject", "subj01", "--sessions", N_SESSIONS]
    code, out, err = run_cli("nsd", "fetch", *flags, *server_flags(world), monkeypatch=monkeypatch)
    assert code == 0, err
    code, out, err = run_cli("nsd", "check", *flags, monkeypatch=monkeypatch)
    assert code == 0 and re.search(r"10 files of subj01 \(2 sessions\) in .*: whole", out), (out, err)
    # damaged on the server: the HDF5 signature gone, same size; the next fetch sees the new ETag, fetches it
    # again (the server's copy is what a user gets), and check names it as unreadable
    data = bytearray((world.source.root / BETAS_2).read_bytes())
    data[:8] = b"\0" * 8
    world.upload(BETAS_2, bytes(data))
    code, out, err = run_cli("nsd", "fetch", *flags, *server_flags(world), monkeypatch=monkeypatch)
    assert code == 0 and f"{BETAS_2}  (changed on the server: fetched again)" in out
    code, out, err = run_cli("nsd", "check", *flags, monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1
    assert re.search(rf"recon: error: 1 file\(s\) of .* missing or damaged; the first: {re.escape(BETAS_2)}: cannot "
                     r"read .* \(truncated or corrupt\?\)", err), err
    # damaged on disk: one byte of the ROI volume, same size; and a caption file gone
    roi = world.root / ROI
    data = bytearray(roi.read_bytes())
    data[-5] ^= 0xFF
    roi.write_bytes(bytes(data))
    (world.root / CAPTIONS / "captions_val2017.json").unlink()
    code, out, err = run_cli("nsd", "check", *flags, monkeypatch=monkeypatch)
    assert code == 1 and f"the first: {ROI}: its sha256" in err and "recorded for it" in err
    assert re.search(rf"DAMAGED .*{re.escape(ROI)}", out) and re.search(rf"DAMAGED .*{re.escape(BETAS_2)}", out)
    assert re.search(r"MISSING .*captions_val2017\.json: missing", out)
    assert "3 file(s)" in err


def test_a_private_object_fails_in_one_line_saying_to_use_anonymous_access_or_a_mirror(world, monkeypatch):
    ctab = "nsddata/freesurfer/fsaverage/label/streams.mgz.ctab"
    world.upload(ctab, (world.source.root / ctab).read_bytes(), public=False)
    code, out, err = run_cli("nsd", "fetch", "--root", world.root, "--subject", "subj01", "--sessions", N_SESSIONS,
                             *server_flags(world), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1, err
    assert f"s3://{world.bucket}/{ctab}" in err and "403" in err and "anonymous" in err and "mirror" in err
    assert not world.root.exists()  # found while sizing: nothing written


def test_more_sessions_than_the_design_has_are_refused_naming_them(world, monkeypatch):
    code, _, err = run_cli("nsd", "fetch", "--root", world.root, "--subject", "subj01", "--sessions", 3,
                           "--dry-run", *server_flags(world), monkeypatch=monkeypatch)
    assert code == 1 and "n_sessions must be in 1..2, got 3" in err
    code, _, err = run_cli("nsd", "check", "--root", world.root / "absent", "--subject", "subj01",
                           monkeypatch=monkeypatch)
    assert code == 1 and "does not exist" in err
    world.root.mkdir()
    code, out, err = run_cli("nsd", "check", "--root", world.root, "--subject", "subj01", monkeypatch=monkeypatch)
    assert code == 1 and "the first: nsddata/experiments/nsd/nsd_expdesign.mat: missing" in err


def test_check_reads_a_tree_that_was_not_fetched(world, monkeypatch):
    """A tree copied by other means (no .recon-fetch.json, no digests): present and readable is what it can say."""
    code, out, err = run_cli("nsd", "check", "--root", world.source.root, "--subject", "subj01", "--subject",
                             "subj02", "--sessions", N_SESSIONS, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "no digest recorded to compare" in out and "(optional, absent: the reader goes without it)" in out


def test_a_download_that_does_not_match_its_md5_etag_is_removed_not_installed(world):
    world.web.etags[world.archive_path] = hashlib.md5(b"another archive").hexdigest()
    with pytest.raises(TransferError, match=rf"{re.escape(world.servers.annotations_url)}: the download has MD5 "
                                            r"[0-9a-f]{32}, but the server lists .* bytes, ETag [0-9a-f]{32}: removed"):
        world.fetch()
    assert not (world.root / CAPTIONS).exists()
    assert not list((world.root / ARCHIVE_DIR).iterdir())  # neither the archive nor a partial of it


def test_a_server_that_cannot_be_reached_fails_in_one_line_naming_the_file(world, monkeypatch):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    flags = server_flags(world)
    flags[flags.index("--endpoint-url") + 1] = f"http://127.0.0.1:{port}"
    code, _, err = run_cli("nsd", "fetch", "--root", world.root, "--subject", "subj01", "--sessions", N_SESSIONS,
                           *flags, monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1, err
    assert f"s3://{world.bucket}/nsddata/experiments/nsd/nsd_expdesign.mat at http://127.0.0.1:{port}: the " \
           "connection failed: EndpointConnectionError" in err
