"""The one cache: computed once, keyed by content, atomic, and loud about corrupt entries."""

import re

import numpy as np
import pytest

from recon import cache as cache_module
from recon.cache import Cache, CacheError, digest


class Counter:
    def __init__(self, value=None):
        self.calls = 0
        self.value = np.arange(1000.0) if value is None else value

    def __call__(self):
        self.calls += 1
        return {"x": self.value, "n": self.calls}


def the_entry(root, stage="stage"):
    (entry,) = [p for p in (root / stage).iterdir() if not p.name.startswith(".")]
    return entry


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


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "no_manifest"])
def test_a_corrupt_entry_raises_naming_the_folder(tmp_path, damage):
    cache = Cache(tmp_path)
    cache.get("stage", ["k"], Counter())
    entry = the_entry(tmp_path)
    array = entry / "x.npy"
    data = array.read_bytes()
    if damage == "no_manifest":
        (entry / cache_module.MANIFEST).unlink()
    else:
        array.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 50, "empty": b""}[damage])
    compute = Counter()
    with pytest.raises(CacheError, match=f"corrupt cache entry {re.escape(str(entry))}.*delete it to recompute"):
        cache.get("stage", ["k"], compute)
    assert compute.calls == 0  # never silently recomputed over, never read as whole


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
            seen.append(sorted(p.name for p in (tmp_path / "stage").iterdir()))
        writer.put("ids", np.arange(4))

    out = cache.get_streamed("stage", ["k"], fill)
    assert all(len(names) == 1 and names[0].startswith(".") for names in seen)  # only a hidden temporary
    assert out["x"].dtype == np.float16 and out["x"][3, 0] == 3 and list(out["ids"]) == [0, 1, 2, 3]
    assert cache.get_streamed("stage", ["k"], lambda w: pytest.fail("recomputed"))["x"].shape == (4, 3)


def test_a_write_that_dies_halfway_leaves_no_entry(tmp_path):
    cache = Cache(tmp_path)

    def dies_halfway(writer):
        writer.create("x", (1000,))[:500] = 1.0
        raise KeyboardInterrupt  # the process is interrupted halfway

    with pytest.raises(KeyboardInterrupt):
        cache.get_streamed("stage", ["k"], dies_halfway)
    assert list((tmp_path / "stage").iterdir()) == []  # no entry, no temporary left
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
