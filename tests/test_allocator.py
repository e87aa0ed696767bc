"""recon.allocator: glibc keeps freed memory for the next allocation in a computing process, and no product
changes by a byte for it."""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from recon import allocator
from recon.cache import Cache

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: a child process (its allocator untouched by other tests): the smoke profile's +G (float64) and img2img on two
#: images with glibc's defaults, then again with freed memory kept, hashed
CHILD = """
import hashlib, json, sys
import numpy as np, torch
from recon import allocator, features, methods, models, recipes
from recon.profiles import get_profile
torch.set_num_threads(1)
p = get_profile("smoke", cache_dir=sys.argv[1])
vgg, pipe = models.vgg19_features(p), models.img2img(p)
widths = features.vgg_layer_widths(vgg, p.vgg_layers, p.vgg_pool, p.generator_size)


def hashes():
    rng = np.random.default_rng(0)
    targets = {layer: rng.standard_normal((2, width)).astype(np.float32) for layer, width in widths.items()}
    gan = methods.images_from_vgg_features(models.gan_generator(p), vgg, targets,
                                           **recipes.feature_matching_options(p), progress=False)
    latents = rng.standard_normal((2, 4, p.z_size, p.z_size)).astype(np.float32)
    generated = methods.img2img(pipe, latents, prompts=["a red ball", "a blue car"], n_samples=p.n_samples,
                                strength=p.strength, guidance_scale=p.guidance_scale,
                                num_inference_steps=p.num_inference_steps, seed=0, batch_size=p.batch_size,
                                progress=False)
    return {name: hashlib.sha256(np.ascontiguousarray(a)).hexdigest() for name, a in
            {"gan": gan, "img2img": generated}.items()}


defaults = hashes()
assert allocator.keep_freed_memory()
print(json.dumps({"defaults": defaults, "kept": hashes()}))
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_glibc_takes_the_settings_once_per_process(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    assert allocator.keep_freed_memory()
    assert allocator._applied == (allocator.MMAP_THRESHOLD, allocator.TRIM_THRESHOLD)
    monkeypatch.setattr(allocator, "glibc_mallopt", lambda: pytest.fail("set again"))
    assert allocator.keep_freed_memory()  # once set, again is a no-op


def test_a_refused_setting_is_reported_not_recorded(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator, "glibc_mallopt", lambda: lambda parameter, value: 0)  # mallopt's "refused"
    assert not allocator.keep_freed_memory()
    assert allocator._applied is None
    monkeypatch.setattr(allocator, "glibc_mallopt", lambda: None)  # not glibc
    assert not allocator.keep_freed_memory()


def test_every_computation_keeps_freed_memory(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("recon.cache.keep_freed_memory", lambda: calls.append(1) or True)
    cache = Cache(tmp_path / "cache")
    out = cache.get("stage", ("key",), lambda: {"x": np.arange(3)})
    assert out["x"].tolist() == [0, 1, 2] and calls == [1]
    cache.get("stage", ("key",), lambda: pytest.fail("a cached entry is read, not computed"))
    assert calls == [1]  # reading computes nothing
    Cache(tmp_path / "off", enabled=False).get("stage", ("key",), lambda: {"x": np.arange(3)})
    assert calls == [1, 1]


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_kept_memory_changes_no_byte_of_g_or_img2img(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "cache")], capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs["kept"] == runs["defaults"]
