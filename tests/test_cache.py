"""The one cache: computed once, keyed by content, atomic, and loud about corrupt entries."""

import numpy as np
import pytest

from recon.cache import Cache, CacheError, digest


def test_computes_once_and_reads_back(tmp_path):
    cache, calls = Cache(tmp_path), []

    def compute():
        calls.append(1)
        return {"x": np.arange(3.0)}

    first = cache.get("stage", ["a", 1], compute)
    second = cache.get("stage", ["a", 1], compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["x"], second["x"])
    cache.get("stage", ["a", 2], compute)
    assert len(calls) == 2


def test_keys_follow_array_content_not_identity():
    assert digest([np.zeros(3)]) == digest([np.zeros(3)])
    assert digest([np.zeros(3)]) != digest([np.ones(3)])
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})


def test_corrupt_entry_fails_naming_the_file(tmp_path):
    cache = Cache(tmp_path)
    cache.get("stage", ["k"], lambda: {"x": np.arange(1000.0)})
    (entry,) = (tmp_path / "stage").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    with pytest.raises(CacheError, match=f"corrupt cache entry {entry}"):
        cache.get("stage", ["k"], lambda: {"x": np.zeros(1)})


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    cache = Cache(tmp_path)

    class Unsavable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.save(cache.path("stage", "key"), {"x": Unsavable()})
    assert list((tmp_path / "stage").iterdir()) == []


def test_disabled_cache_always_computes(tmp_path):
    cache, calls = Cache(tmp_path, enabled=False), []
    for _ in range(2):
        cache.get("stage", ["k"], lambda: calls.append(1) or {"x": np.zeros(1)})
    assert len(calls) == 2 and not (tmp_path / "stage").exists()
