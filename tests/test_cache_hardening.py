"""The cache can be moved, shared and verified, and bad parameters fail before anything is computed."""

import os
import shutil
import stat
import sys
import warnings

import numpy as np
import pytest

from recon import book, cli
from recon.cache import Cache, CacheError, CacheWarning
from recon.config import ConfigError
from recon.profiles import get_profile
from recon.errors import ReconError
from recon.experiment import Experiment
from recon.nsd import DIGEST_MEMO, NSDReader

from conftest import N_SESSIONS, TRIALS_PER_SESSION


def nsd_experiment(root, cache):
    profile = get_profile("nsd", nsd_root=root, cache_dir=cache, n_sessions=N_SESSIONS, device="cpu")
    profile = profile.replace(trials_per_session=TRIALS_PER_SESSION)
    return Experiment(profile, "subj01", progress=False)


# ----------------------------------------------------------------------- keys from content
def test_keys_survive_moving_the_tree_and_the_cache_and_change_with_a_files_content(mini_nsd, tmp_path):
    before = nsd_experiment(mini_nsd.root, tmp_path / "cache")
    key = before.entry_path("features", "z").name
    (tmp_path / "elsewhere").mkdir()
    moved_root = shutil.move(str(mini_nsd.root), str(tmp_path / "elsewhere" / "nsd"))  # mv: same mtimes, memo moves
    copied_root = tmp_path / "copy"
    shutil.copytree(moved_root, copied_root, copy_function=shutil.copy)  # plain cp: new mtimes, digests recomputed
    (copied_root / DIGEST_MEMO).unlink()
    for root, cache in ((moved_root, tmp_path / "cache"), (copied_root, tmp_path / "other-cache")):
        assert nsd_experiment(root, cache).entry_path("features", "z").name == key, root
    roi = copied_root / "nsddata/ppdata/subj01/func1pt8mm/roi/streams.nii.gz"
    data = bytearray(roi.read_bytes())
    data[-5] ^= 0xFF  # one byte of the (gzip) file, same size
    roi.write_bytes(bytes(data))
    assert nsd_experiment(copied_root, tmp_path / "cache").entry_path("features", "z").name != key


def test_the_fingerprint_reads_every_used_file_once_then_only_stats_them(mini_nsd, monkeypatch):
    reader = NSDReader(mini_nsd.root, TRIALS_PER_SESSION)
    first = reader.fingerprint("subj01", N_SESSIONS)
    assert (mini_nsd.root / DIGEST_MEMO).is_file()
    import recon.nsd

    monkeypatch.setattr(recon.nsd, "_file_sha256", lambda file: pytest.fail(f"{file} hashed again"))
    assert NSDReader(mini_nsd.root, TRIALS_PER_SESSION).fingerprint("subj01", N_SESSIONS) == first
    assert reader.fingerprint("subj01", 1) != first  # another set of sessions is other data


def test_too_many_sessions_names_the_subject_the_sessions_there_and_the_option(mini_nsd):
    reader = NSDReader(mini_nsd.root, TRIALS_PER_SESSION)
    with pytest.raises(ConfigError, match=r"n_sessions must be in 1\.\.2, got 37: the design of subj01 .* has 2 "
                                          r"sessions .*-p n_sessions N, recon --n-sessions N"):
        reader.fingerprint("subj01", 37)


# ----------------------------------------------------------------------- verified entries
def test_a_flipped_byte_is_caught_on_read_and_recomputed(tmp_path):
    cache = Cache(tmp_path)
    value = np.arange(1000, dtype=np.float32)
    first = cache.get("stage", ["k"], lambda: {"x": value})["x"]
    path = cache.key_path("stage", ["k"])
    file = path / "x.npy"
    data = bytearray(file.read_bytes())
    data[-40] ^= 0x01  # a value changes, the size and header do not
    file.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="checksum"):
        cache.load(path)
    with pytest.warns(CacheWarning, match="moved aside"):
        again = cache.get("stage", ["k"], lambda: {"x": value})["x"]
    np.testing.assert_array_equal(again, first)


def test_large_entries_are_verified_on_request_and_by_recon_verify(tmp_path, monkeypatch, capsys):
    import recon.cache

    monkeypatch.setattr(recon.cache, "VERIFY_ON_READ_BYTES", 0)  # every entry counts as large here
    cache = Cache(tmp_path)
    cache.get("stage", ["a"], lambda: {"x": np.ones(100)})
    cache.get("stage", ["b"], lambda: {"x": np.zeros(100)})
    file = cache.key_path("stage", ["b"]) / "x.npy"
    data = bytearray(file.read_bytes())
    data[-1] ^= 0x01
    file.write_bytes(bytes(data))
    cache.load(cache.key_path("stage", ["b"]))  # not checked: a large entry is memory-mapped unread
    with pytest.raises(CacheError, match="checksum"):
        Cache(tmp_path, verify=True).load(cache.key_path("stage", ["b"]))
    assert cli.main(["verify", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "2 entries checked" in out and "1 damaged" in out
    assert not cache.key_path("stage", ["b"]).exists() and cache.key_path("stage", ["a"]).exists()
    assert cli.main(["verify", "--cache", str(tmp_path)]) == 0


# ----------------------------------------------------------------------- shared-cache hygiene
def test_entries_follow_the_umask_so_a_group_can_share_the_cache(tmp_path):
    old = os.umask(0o002)
    try:
        Cache(tmp_path).get("stage", ["k"], lambda: {"x": np.ones(3)})
    finally:
        os.umask(old)
    entry = Cache(tmp_path).key_path("stage", ["k"])
    assert stat.S_IMODE(entry.stat().st_mode) == 0o775
    assert stat.S_IMODE((entry / "x.npy").stat().st_mode) == 0o664


def test_cache_clean_removes_old_leftovers_and_keeps_entries(tmp_path, capsys):
    cache = Cache(tmp_path)
    cache.get("stage", ["k"], lambda: {"x": np.ones(3)})
    corrupt = tmp_path / "stage" / ".corrupt-abc-20260101T000000"
    temporary = tmp_path / "stage" / f".{'0' * 24}-tmpxyz"
    for folder in (corrupt, temporary):
        folder.mkdir()
        os.utime(folder, (0, 0))
    fresh = tmp_path / "stage" / ".corrupt-def-20261202T000000"
    fresh.mkdir()
    assert cli.main(["cache", "clean", "--cache", str(tmp_path), "--dry-run"]) == 0
    assert corrupt.exists() and "2 folder(s) to remove" in capsys.readouterr().out
    assert cli.main(["cache", "clean", "--cache", str(tmp_path)]) == 0
    assert not corrupt.exists() and not temporary.exists() and fresh.exists()
    assert cache.key_path("stage", ["k"]).is_dir()


_FILL_A_CACHE = """
import sys
import numpy as np
from recon.cache import Cache
from recon.errors import ReconError
def fill(writer):
    writer.create("x", (1024, 1024), np.float32)[:] = 1.0  # 4 MiB
try:
    Cache(sys.argv[1]).get_streamed("stage", ["k"], fill)
except ReconError as err:
    print(err, file=sys.stderr)
    sys.exit(1)
"""


def test_a_full_disk_is_one_line_naming_the_entry_and_the_bytes(tmp_path):
    """On a 1 MiB tmpfs, a 4 MiB entry: without its blocks reserved, the first write through the map died of
    SIGBUS ("Bus error", exit 135 from a shell, no message)."""
    import subprocess
    import sys

    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the next test fakes the full disk instead")
    try:
        run = subprocess.run([sys.executable, "-c", _FILL_A_CACHE, str(small / "cache")], capture_output=True, text=True)
        assert run.returncode == 1, (run.returncode, run.stderr[-500:])
        assert run.stderr.count("\n") == 1 and "no space left on the disk of the cache for stage/x: it needs " \
            "4,194,432 bytes" in run.stderr, run.stderr  # with the .npy header
        assert [p.name for p in (small / "cache" / "stage").iterdir()] == [f".{Cache(small).key_path('stage', ['k']).name}.lock"]
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_simulation_on_a_full_disk_is_one_line(tmp_path):
    """On a 50 MB tmpfs, `recon run dataset --profile toy` ended in h5py's traceback and a segmentation fault
    (exit 139) as the stimulus brick filled the disk."""
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the next test fakes the full disk instead")
    try:
        run = subprocess.run([sys.executable, "-m", "recon", "run", "dataset", "--profile", "toy", "--cache",
                              str(small / "cache")], capture_output=True, text=True, timeout=300)
        assert run.returncode == 1 and run.stderr.count("\n") == 1, (run.returncode, run.stderr[-800:])
        assert f"no space left for the simulated NSD {small / 'cache' / 'toy-nsd'}: it takes up to" in run.stderr
        assert [p.name for p in (small / "cache").iterdir()] == [".toy-nsd.lock"]
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_no_room_for_a_simulation_fails_before_writing(tmp_path, monkeypatch):
    from recon.toy import simulate

    config = simulate.SimulationConfig()
    monkeypatch.setattr(simulate.shutil, "disk_usage",
                        lambda folder: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, config.bytes_upper_bound() - 1))
    with pytest.raises(CacheError, match=r"no space left for the simulated NSD .*toy-nsd: it takes up to "
                                         rf"{config.bytes_upper_bound():,} bytes and"):
        simulate.simulate_nsd(tmp_path / "toy-nsd", config, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_no_room_for_an_entry_fails_naming_it_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    cache = Cache(tmp_path)
    with pytest.raises(CacheError, match=r"no space left on the disk of the cache for stage/x: it needs 4,128 bytes"):
        cache.get_streamed("stage", ["k"], lambda writer: writer.create("x", (1000,), np.float32))
    assert not cache.key_path("stage", ["k"]).exists() and not list((tmp_path / "stage").glob(".*-*"))


def test_a_read_only_cache_is_one_line_naming_it_on_a_miss(tmp_path, capsys):
    """A read-only mount (a permission-denied folder looks the same; as root only a mount refuses writes): the CLI
    printed filelock's 48-line traceback on a cache miss."""
    import subprocess

    cache = tmp_path / "cache"
    cache.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(cache)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root); the next test fakes the refusal instead")
    try:
        assert cli.main(["run", "dataset", "--profile", "smoke", "--cache", str(cache)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"the cache {cache} cannot be written (Read-only file system" in err, err
        with pytest.raises(CacheError, match="cannot be written .*point RECON_CACHE \\(or --cache\\) at a writable"):
            Cache(cache).get("stage", ["k"], lambda: {"x": np.ones(2)})
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_a_forbidden_cache_is_a_cache_error_and_a_hit_still_reads(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    cache.get("stage", ["hit"], lambda: {"x": np.ones(2)})
    from filelock import FileLock

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", self.lock_file)

    monkeypatch.setattr(FileLock, "acquire", refuse)
    np.testing.assert_array_equal(cache.get("stage", ["hit"], lambda: {})["x"], np.ones(2))  # no lock needed
    with pytest.raises(CacheError, match=f"the cache {tmp_path} cannot be written \\(Permission denied: "):
        cache.get("stage", ["miss"], lambda: {"x": np.ones(2)})


def test_a_killed_simulations_temporary_is_removed_by_cache_clean_and_by_the_next_simulation(tmp_path, capsys):
    from filelock import FileLock

    from recon.experiment import ensure_dataset

    (tmp_path / ".smoke-nsd.lock").touch()  # the lock ensure_dataset writes under
    killed = tmp_path / ".smoke-nsd-k1lled"  # what simulate_nsd's atomic folder was when its writer died
    (killed / "nsddata").mkdir(parents=True)
    os.utime(killed, (0, 0))
    with FileLock(str(tmp_path / ".smoke-nsd.lock")):  # a live simulation: its temporary stays
        assert Cache(tmp_path).clean(older_than_s=0) == []
    assert cli.main(["cache", "clean", "--cache", str(tmp_path), "--older-than", "0"]) == 0
    assert not killed.exists() and "1 folder(s)" in capsys.readouterr().out
    killed.mkdir()  # killed again; the next simulation sweeps it before writing
    profile = get_profile("smoke", cache_dir=tmp_path)
    assert ensure_dataset(profile, progress=False) == profile.nsd_root
    assert not killed.exists() and sorted(p.name for p in tmp_path.glob(".smoke-nsd*")) == [".smoke-nsd.lock"]


# ----------------------------------------------------------------------- parameters up front
@pytest.mark.parametrize("overrides, named", [
    ({"seed": "notanumber"}, "seed must be an integer >= 0, got 'notanumber'"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"n_samples": 0}, "n_samples must be an integer >= 1, got 0"),
    ({"device": "gpu"}, "device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    ({"n_sessions": "all"}, "n_sessions must be an integer"),
])
def test_bad_notebook_parameters_fail_naming_them_before_anything_is_written(overrides, named, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        book.start("toy", "subj01", **{"cache_dir": cache} | overrides)
    assert not cache.exists()


def test_a_gpu_the_machine_lacks_fails_at_once_naming_the_device(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="device is 'cuda', but torch finds no CUDA GPU here"):
        book.start("toy", "subj01", device="cuda", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_every_error_recon_names_derives_from_one_class_and_the_cli_prints_it_in_one_line(mini_nsd, tmp_path,
                                                                                          capsys):
    from recon.cache import ColdCacheError
    from recon.models import ModelNotAvailableError
    from recon.nsd import NSDFileError
    from recon.toy.zoo import ZooError

    for error in (ConfigError, NSDFileError, CacheError, ColdCacheError, ModelNotAvailableError, ZooError):
        assert issubclass(error, ReconError), error
    rc = cli.main(["table1", "--profile", "nsd", "--nsd-root", str(mini_nsd.root), "--cache", str(tmp_path), "--device", "cpu",
                   "--n-sessions", "37"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("recon: error: n_sessions must be in 1..") and "subj01" in err


def test_a_notebook_shows_an_error_recon_names_in_one_line_and_still_fails():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shown = []
    shell._showtraceback = lambda etype, value, stb: shown.append(stb)  # what the kernel sends as the error output
    try:
        result = shell.run_cell("from recon import book\nbook.start('toy', 'subj99')")
    finally:
        shell.custom_exceptions, shell.CustomTB = (), None
        InteractiveShell.clear_instance()
    assert isinstance(result.error_in_exec, ConfigError)  # the cell fails: papermill and the book stop
    assert shown == [["ConfigError: unknown subject 'subj99'; valid subjects are subj01, subj02, subj05, subj07"]]


def test_papermill_stops_at_a_bad_parameter_with_its_one_line(tmp_path):
    """The same through a real kernel, as papermill and the book build run the notebooks."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from recon import book\nbook.start('toy', 'subj01', seed='notanumber', cache_dir=%r)" % str(tmp_path))])
    with pytest.raises(CellExecutionError):
        NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    (error,) = [o for o in notebook.cells[0].outputs if o.output_type == "error"]
    assert error.ename == "ConfigError" and error.traceback == ["ConfigError: seed must be an integer >= 0, got "
                                                                "'notanumber'"]
    assert list(tmp_path.iterdir()) == []


def test_a_product_is_keyed_by_what_it_reads(tmp_path):
    """Changing a setting upstream (+G's grid, the decoders' alphas) gives every product that reads it a new key,
    and leaves the others' alone: a warm cache never serves a stale reconstruction."""
    def paths(**overrides):
        exp = Experiment(get_profile("smoke", cache_dir=tmp_path, **overrides), "subj01", progress=False)
        runs = [("[30]", "sd"), ("+T", "sd"), ("+T+G", "sd"), ("+T+G+D", "sd"), ("[30]", "sd2")]
        out = {f"reconstruct {m} {v}": exp.entry_path("reconstruct", m, v).name for m, v in runs}
        return out | {stage: exp.entry_path(stage).name for stage in ("captions", "depth", "gan")}

    base = paths()
    finer_grid = paths(generator_code_quantum=2.0**-20)
    assert {k for k in base if base[k] != finer_grid[k]} == {"gan", "reconstruct +T+G sd", "reconstruct +T+G+D sd"}
    other_alphas = paths(alphas_highdim=(1.0, 10.0))  # BLIP, DPT and VGG19 decoders
    assert {k for k in base if base[k] == other_alphas[k]} == {"reconstruct [30] sd", "reconstruct [30] sd2"}
