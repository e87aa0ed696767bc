"""The one cache: computed once, keyed by content, atomic, and loud about corrupt entries."""

import os
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


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_entry_raises_naming_the_file(tmp_path, damage):
    cache = Cache(tmp_path)
    cache.get("stage", ["k"], Counter())
    entry = the_entry(tmp_path)
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00garbage" * 50, "empty": b""}[damage])
    compute = Counter()
    with pytest.raises(CacheError, match=f"corrupt cache entry {re.escape(str(entry))}.*delete it to recompute"):
        cache.get("stage", ["k"], compute)
    assert compute.calls == 0  # never silently recomputed over, never read as whole


def test_save_writes_a_temporary_file_and_renames_it_into_place(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    target = cache.path("stage", "key")
    seen = []
    real_savez, real_replace = np.savez, os.replace

    def savez(f, **arrays):
        seen.append(("write", sorted(p.name for p in target.parent.iterdir())))
        real_savez(f, **arrays)

    def replace(src, dst):
        seen.append(("rename", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(cache_module.np, "savez", savez)
    monkeypatch.setattr(cache_module.os, "replace", replace)
    cache.save(target, {"x": np.arange(3)})
    (_, files_while_writing), (_, src, dst) = seen
    # while the bytes are written, only a hidden temporary exists, in the entry's own folder
    # (so the final rename is atomic), and the entry itself does not
    assert files_while_writing == [os.path.basename(src)] and src.startswith(str(target.parent / "."))
    assert dst == str(target) and src != dst
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert np.array_equal(cache.load(target)["x"], np.arange(3))


def test_a_write_that_dies_halfway_leaves_no_entry(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    real_savez = np.savez

    def dies_halfway(f, **arrays):
        real_savez(f, **arrays)
        f.truncate(f.tell() // 2)  # half the bytes are on disk ...
        raise KeyboardInterrupt  # ... when the process is interrupted

    monkeypatch.setattr(cache_module.np, "savez", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        cache.get("stage", ["k"], Counter())
    assert list((tmp_path / "stage").iterdir()) == []  # no entry, no temporary left
    monkeypatch.undo()
    compute = Counter()
    out = cache.get("stage", ["k"], compute)  # the next run computes it whole
    assert compute.calls == 1 and np.array_equal(out["x"], np.arange(1000.0))


def test_a_temporary_left_by_a_killed_process_is_never_read(tmp_path):
    # SIGKILL leaves the temporary behind: it has another name, so get() ignores it
    cache = Cache(tmp_path)
    target = cache.path("stage", digest("stage", ["k"]))
    target.parent.mkdir(parents=True)
    (target.parent / f".{target.stem}-abc123.npz").write_bytes(b"half an entry")
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


def test_disabled_cache_always_computes(tmp_path):
    cache, compute = Cache(tmp_path, enabled=False), Counter()
    for _ in range(2):
        cache.get("stage", ["k"], compute)
    assert compute.calls == 2 and not (tmp_path / "stage").exists()
