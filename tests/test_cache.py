"""The one cache: computed once, keyed by content, atomic, shared by many processes, self-healing."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from recon import cache as cache_module
from recon.cache import Cache, CacheError, CacheWarning, ColdCacheError, digest


class Counter:
    def __init__(self, value=None):
        self.calls = 0
        self.value = np.arange(1000.0) if value is None else value

    def __call__(self):
        self.calls += 1
        return {"x": self.value, "n": self.calls}


def the_entry(root, stage="stage"):
    (entry,) = entries(root, stage)
    return entry


def entries(root, stage="stage") -> list[Path]:
    """The entries a reader can see (hidden names are temporaries, locks and entries moved aside)."""
    folder = Path(root) / stage
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def hidden(root, stage="stage") -> list[str]:
    """Hidden names other than lock files: temporaries and entries moved aside."""
    names = (p.name for p in (Path(root) / stage).iterdir())
    return sorted(name for name in names if name.startswith(".") and not name.endswith(".lock"))


def entry_bytes(entry: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(entry.iterdir())}


def test_computes_once_and_reads_back(tmp_path):
    cache, compute = Cache(tmp_path), Counter()
    first = cache.get("stage", ["a", 1], compute)
    second = cache.get("stage", ["a", 1], compute)
    assert compute.calls == 1
    np.testing.assert_array_equal(first["x"], second["x"])
    assert int(second["n"]) == 1 and second["x"].dtype == np.float64
    # a fresh Cache on the same folder (another process) reads the same entry
    third = Cache(tmp_path).get("stage", ["a", 1], compute)
    assert compute.calls == 1 and np.array_equal(third["x"], first["x"])


def test_another_key_or_stage_recomputes(tmp_path):
    cache, compute = Cache(tmp_path), Counter()
    cache.get("stage", ["a", 1], compute)
    cache.get("stage", ["a", 2], compute)
    cache.get("other", ["a", 1], compute)
    cache.get("stage", ["a", np.zeros(3)], compute)
    cache.get("stage", ["a", np.ones(3)], compute)
    assert compute.calls == 5
    cache.get("stage", ["a", np.ones(3)], compute)  # same content, another array object
    assert compute.calls == 5


def test_keys_follow_content_not_identity():
    assert digest([np.zeros(3)]) == digest([np.zeros(3)])
    assert digest([np.zeros(3)]) != digest([np.ones(3)])
    assert digest([np.zeros(6)]) != digest([np.zeros((2, 3))])  # same bytes, another shape
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})


DAMAGES = ["truncate", "garbage", "empty", "no_manifest", "bad_manifest"]


def damage_entry(entry: Path, damage: str) -> None:
    array = entry / "x.npy"
    data = array.read_bytes()
    if damage == "no_manifest":
        (entry / cache_module.MANIFEST).unlink()
    elif damage == "bad_manifest":
        (entry / cache_module.MANIFEST).write_text('{"arrays": {"x": ')
    else:
        array.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 50, "empty": b""}[damage])


@pytest.mark.parametrize("damage", DAMAGES)
def test_loading_a_corrupt_entry_raises_naming_the_folder(tmp_path, damage):
    cache = Cache(tmp_path)
    cache.get("stage", ["k"], Counter())
    entry = the_entry(tmp_path)
    damage_entry(entry, damage)
    with pytest.raises(CacheError, match=f"corrupt cache entry {re.escape(str(entry))}"):
        cache.load(entry)  # never read as whole


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_corrupt_entry_is_moved_aside_with_a_warning_and_computed_again(tmp_path, damage):
    reference = Cache(tmp_path / "reference")
    reference.get("stage", ["k"], Counter())
    cache = Cache(tmp_path / "cache")
    cache.get("stage", ["k"], Counter())
    entry = the_entry(tmp_path / "cache")
    damage_entry(entry, damage)
    damaged = entry_bytes(entry)

    compute = Counter()
    with pytest.warns(CacheWarning, match=f"corrupt cache entry {re.escape(str(entry))}.*moved aside to .*corrupt-"):
        out = cache.get("stage", ["k"], compute)
    assert compute.calls == 1 and np.array_equal(out["x"], compute.value)
    # one entry again, byte for byte what a clean run writes; the damaged one kept aside for inspection
    assert entries(tmp_path / "cache") == [entry]
    assert entry_bytes(entry) == entry_bytes(the_entry(tmp_path / "reference"))
    (aside,) = hidden(tmp_path / "cache")
    assert re.fullmatch(rf"\.corrupt-{entry.name}-\d{{8}}T\d{{6}}", aside)
    assert entry_bytes(entry.parent / aside) == damaged
    cache.get("stage", ["k"], compute)  # healthy now: read, not computed
    assert compute.calls == 1


def test_large_arrays_come_back_as_read_only_memory_maps(tmp_path):
    cache = Cache(tmp_path)
    big = np.arange(cache_module.MMAP_THRESHOLD // 4, dtype=np.float32)
    out = cache.get("stage", ["k"], lambda: {"big": big, "small": np.arange(3), "text": np.array(["a", "bc"])})
    assert isinstance(out["big"], np.memmap) and not out["big"].flags.writeable
    np.testing.assert_array_equal(out["big"], big)
    assert not isinstance(out["small"], np.memmap) and list(out["text"]) == ["a", "bc"]


def test_a_streamed_entry_is_written_batch_by_batch_and_appears_only_when_complete(tmp_path):
    cache = Cache(tmp_path)
    seen = []

    def fill(writer):
        x = writer.create("x", (4, 3), np.float16)
        for row in range(4):
            x[row] = row
            seen.append(sorted(p.name for p in (tmp_path / "stage").iterdir() if not p.name.endswith(".lock")))
        writer.put("ids", np.arange(4))

    out = cache.get_streamed("stage", ["k"], fill)
    # while writing: only a hidden temporary (and the key's lock file)
    assert all(len(names) == 1 and names[0].startswith(".") for names in seen)
    assert out["x"].dtype == np.float16 and out["x"][3, 0] == 3 and list(out["ids"]) == [0, 1, 2, 3]
    assert cache.get_streamed("stage", ["k"], lambda w: pytest.fail("recomputed"))["x"].shape == (4, 3)


def test_a_write_that_dies_halfway_leaves_no_entry(tmp_path):
    cache = Cache(tmp_path)

    def dies_halfway(writer):
        writer.create("x", (1000,))[:500] = 1.0
        raise KeyboardInterrupt  # the process is interrupted halfway

    with pytest.raises(KeyboardInterrupt):
        cache.get_streamed("stage", ["k"], dies_halfway)
    assert entries(tmp_path) == [] and hidden(tmp_path) == []  # no entry, no temporary left
    compute = Counter()
    out = cache.get("stage", ["k"], compute)  # the next run computes it whole
    assert compute.calls == 1 and np.array_equal(out["x"], np.arange(1000.0))


def test_a_temporary_left_by_a_killed_process_is_never_read(tmp_path):
    # SIGKILL leaves the temporary folder behind: it has another name, so get() ignores it
    cache = Cache(tmp_path)
    target = cache.key_path("stage", ["k"])
    leftover = target.parent / f".{target.name}-abc123"
    leftover.mkdir(parents=True)
    (leftover / "x.npy").write_bytes(b"half an entry")
    compute = Counter()
    out = cache.get("stage", ["k"], compute)
    assert compute.calls == 1 and np.array_equal(out["x"], compute.value)
    assert cache.get("stage", ["k"], compute)["x"].shape == (1000,) and compute.calls == 1
    assert not leftover.exists()  # removed by the next writer of that key, under its lock


def test_an_unsavable_value_leaves_nothing_behind(tmp_path):
    cache = Cache(tmp_path)

    class Unsavable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("cannot convert")

    with pytest.raises(RuntimeError):
        cache.save(cache.path("stage", "key"), {"x": Unsavable()})
    assert list((tmp_path / "stage").iterdir()) == []
    with pytest.raises(TypeError, match="dtype object"):
        cache.save(cache.path("stage", "key"), {"x": np.array([{}, None])})
    assert list((tmp_path / "stage").iterdir()) == []


def test_hashing_a_memory_map_does_not_copy_it(tmp_path):
    array = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.float32, shape=(64, 1000))
    array[:] = 1
    assert digest([array]) == digest([np.ones((64, 1000), np.float32)])
    assert digest([array]) != digest([np.ones((64, 1000), np.float64)])  # dtype is part of the key


def test_disabled_cache_always_computes(tmp_path):
    cache, compute = Cache(tmp_path, enabled=False), Counter()
    for _ in range(2):
        cache.get("stage", ["k"], compute)
    assert compute.calls == 2 and not (tmp_path / "stage").exists()


def test_the_same_key_writes_byte_identical_entries(tmp_path):
    """Two runs of a stage with the same key, into two caches: the same folder names, files and bytes."""

    def fill(writer):
        x = writer.create("x", (10, 7), np.float16)
        for row in range(10):
            x[row] = np.linspace(0, 1, 7) * row
        writer.put("CLIP(Early)", np.arange(12, dtype=np.float32).reshape(3, 4))
        writer.put("text", np.array(["a", "bc"]))

    for root in (tmp_path / "a", tmp_path / "b"):
        cache = Cache(root)
        cache.get_streamed("streamed", ["k", np.arange(3)], fill)
        cache.get("whole", ["k"], lambda: {"images": np.full((2, 4, 4, 3), 7, np.uint8), "n": np.array(3)})
    for stage in ("streamed", "whole"):
        (a,), (b,) = entries(tmp_path / "a", stage), entries(tmp_path / "b", stage)
        assert a.name == b.name and entry_bytes(a) == entry_bytes(b)


def test_a_cache_that_must_be_warm_raises_on_a_miss_naming_the_stage(tmp_path, monkeypatch):
    monkeypatch.setenv(cache_module.REQUIRE_WARM_ENV, "1")
    cache, compute = Cache(tmp_path / "cache"), Counter()
    with pytest.raises(ColdCacheError, match=r"stage 'decoded' entry \S+/decoded/[0-9a-f]{24} is not in the cache"):
        cache.get("decoded", ["k"], compute)
    with pytest.raises(ColdCacheError, match="stage 'features'"):
        cache.get_streamed("features", ["k"], lambda writer: pytest.fail("computed"))
    assert compute.calls == 0 and not (tmp_path / "cache").exists()  # nothing written, not even a lock
    Cache(tmp_path / "cache", require_warm=False).get("decoded", ["k"], compute)  # the cluster fills it
    assert np.array_equal(cache.get("decoded", ["k"], compute)["x"], compute.value) and compute.calls == 1
    monkeypatch.setenv(cache_module.REQUIRE_WARM_ENV, "0")
    assert not Cache(tmp_path).require_warm


# ------------------------------------------------------------------ many processes, killed processes
WORKER = textwrap.dedent('''
    import hashlib, os, sys, time
    from pathlib import Path
    import numpy as np
    from recon.cache import Cache

    root, mode, log, signal_file = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])

    def note(what):
        with open(log, "a") as f:
            f.write(f"{what} {os.getpid()}\\n")

    def stop_here():  # tell the test where we are, then wait to be killed
        signal_file.write_text(str(os.getpid()))
        time.sleep(120)

    if mode.startswith("together"):  # many workers ask for one key at once
        (root / f"ready-{os.getpid()}").touch()
        while not (root / "go").exists():
            time.sleep(0.002)

        def compute():
            note("computed")
            time.sleep(1.0)
            return {"x": np.arange(200_000, dtype=np.float32) * 3, "n": np.array(7)}

        def fill(writer):
            note("computed")
            time.sleep(1.0)
            x = writer.create("x", (200_000,), np.float32)
            x[:] = np.arange(200_000, dtype=np.float32) * 3
            writer.put("n", np.array(7))

        cache = Cache(root / "cache")
        if mode == "together":
            out = cache.get("stage", ["one key"], compute)
        else:
            out = cache.get_streamed("stage", ["one key"], fill)
        print(hashlib.sha256(np.ascontiguousarray(out["x"]).tobytes() + out["n"].tobytes()).hexdigest())
        sys.exit(0)

    cache = Cache(root)

    def first():
        note("first")
        return {"a": np.arange(1000) % 7}

    cache.get("first", ["k"], first)  # a stage completed before the kill

    if mode == "locked":  # holding the key's lock, computing, nothing written yet
        cache.get("second", ["k"], lambda: (note("second"), stop_here()))

    def fill(writer):
        note("second")
        x = writer.create("x", (64, 4096), np.float32)
        for row in range(64):
            x[row] = np.arange(4096) * row
            if row == 32 and mode == "fill":
                x.flush()
                stop_here()  # half the rows written
        writer.put("ids", np.arange(64))

    if mode == "publish":  # every file and entry.json written, killed just before the rename
        os.rename = lambda src, dst: stop_here()
    cache.get_streamed("second", ["k"], fill)
    print("done")
''')


def worker(root, mode, log, signal_file=None, **kwargs) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), mode, str(log), str(signal_file or "-")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"worker exited early: {process.communicate()}")
        assert time.monotonic() < end, f"worker never reached {path.name}"
        time.sleep(0.01)


@pytest.mark.parametrize("mode", ["together", "together_streamed"])
def test_processes_asking_for_one_key_at_once_compute_it_once(tmp_path, mode):
    n = 6
    log = tmp_path / "log"
    workers = [worker(tmp_path, mode, log) for _ in range(n)]
    end = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < n:  # every worker has imported and waits at the barrier
        assert time.monotonic() < end and all(w.poll() is None for w in workers)
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0] * n, outputs
    assert len(log.read_text().splitlines()) == 1  # computed once; the other five waited and read it
    assert len({out for out, _ in outputs}) == 1  # and every process got the same arrays
    assert sum("waiting for another process" in err for _, err in outputs) >= 1
    assert len(entries(tmp_path / "cache")) == 1 and hidden(tmp_path / "cache") == []


@pytest.mark.parametrize("kill_point", ["fill", "publish", "locked"])
def test_a_worker_killed_at_any_point_leaves_no_entry_and_a_rerun_resumes(tmp_path, kill_point):
    """SIGKILL while writing an entry, after writing it but before publishing it, or while holding
    its lock: no entry that reads as whole, and the rerun keeps what was complete and computes the rest."""
    reference = worker(tmp_path / "reference", "clean", tmp_path / "reference.log")
    assert reference.communicate(timeout=120)[0].strip() == "done"

    root, log, reached = tmp_path / "cache", tmp_path / "log", tmp_path / "reached"
    victim = worker(root, kill_point, log, reached)
    wait_for(reached, victim)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    assert entries(root, "second") == []  # nothing that reads as whole
    assert len(hidden(root, "second")) == (0 if kill_point == "locked" else 1)  # a stale temporary, never read
    (first,) = entries(root, "first")
    assert entry_bytes(first) == entry_bytes(the_entry(tmp_path / "reference", "first"))

    rerun = worker(root, "clean", log)
    assert rerun.communicate(timeout=120)[0].strip() == "done"  # the dead worker's lock did not block it
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["first", "second", "second"]  # resumed
    (second,) = entries(root, "second")
    assert entry_bytes(second) == entry_bytes(the_entry(tmp_path / "reference", "second"))
    assert hidden(root, "second") == []  # the stale temporary was removed under the lock
    assert [len(entries(root, s)) for s in ("first", "second")] == [1, 1]


def test_scratch_of_a_killed_job_is_removed_and_a_live_one_kept(tmp_path):
    script = textwrap.dedent('''
        import sys, time
        from pathlib import Path
        import numpy as np
        from recon.cache import Cache
        with Cache(sys.argv[1]).scratch(lambda w: w.put("x", np.arange(10))):
            Path(sys.argv[2]).touch()
            time.sleep(120)
    ''')
    reached = tmp_path / "reached"
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "cache"), str(reached)])
    try:
        wait_for(reached, holder)
        (live,) = [p for p in (tmp_path / "cache").glob(".scratch-*") if p.is_dir()]
        cache = Cache(tmp_path / "cache")
        with cache.scratch(lambda w: w.put("y", np.arange(3))) as out:
            assert list(out["y"]) == [0, 1, 2]
        assert live.is_dir()  # its owner is alive: kept
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
        assert live.is_dir()  # left behind by the killed job ...
        with cache.scratch(lambda w: w.put("y", np.arange(3))):
            pass
        assert not live.exists()  # ... and removed by the next job that needs scratch space
        assert list((tmp_path / "cache").iterdir()) == []
    finally:
        holder.kill()
        holder.wait(timeout=60)
