"""The toy and smoke profiles: the simulated NSD and the zoo's models, plugged into the science from above.

:mod:`recon.profiles` names them beside ``nsd``; nothing in the science imports this module.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ModelIds, Profile, default_cache_dir, default_results_dir, default_zoo_dir
from .simulate import SimulationConfig


def toy(**overrides) -> Profile:
    """The simulated NSD (written on first use) and the zoo's tiny models, on a CPU."""
    cache = Path(overrides.pop("cache_dir", default_cache_dir()))
    zoo = default_zoo_dir()
    simulation = overrides.pop("simulation", SimulationConfig())
    root = Path(overrides.pop("nsd_root", cache / "toy-nsd"))
    defaults = dict(
        name="toy",
        nsd_root=root,
        simulation=simulation,
        models=ModelIds(
            sd=str(zoo / "sd-img2img"),
            sd2=str(zoo / "sd2-img2img"),
            sd_depth=str(zoo / "sd-depth2img"),
            blip=str(zoo / "blip"),
            dpt=str(zoo / "dpt"),
            clip_eval=str(zoo / "clip"),
            # Table 1's evaluation networks: full-size torchvision nets would not fit the
            # repository, so they are seeded random-feature networks of the real architectures.
            alexnet="seed:0",
            inception="seed:0",
            # +G's feature space needs an image prior: the zoo's VGG19 (narrowed), trained on the toy world
            vgg19=str(zoo / "vgg19"),
        ),
        trials_per_session=simulation.trials_per_session,
        n_sessions=simulation.n_sessions,
        image_size=64,
        eval_resolution=96,
        clip_eval_layers=(1, 2),
        # conv1_2, conv2_2, conv3_4 before their ReLU, as the authors take them; not the nsd profile's eight: with
        # the zoo's VGG19 (2026-11-27, after the ReLU), adding conv4_4 and conv5_4 lowered what +G recovers of 60
        # unseen single-object scenes (exact features: PixCorr 0.49 -> 0.39, colour judged right 0.52 -> 0.47;
        # shrunk, noisy ones: 0.35 -> 0.28), and the category stayed at chance; the zoo's VGG19 has no fc6-8
        vgg_layers=("2", "7", "16"),
        vgg_width_divisor=8,
        vgg_pool=8,
        # +G through the toy VAE decoder: at 64 px its latent is a cheap, learned image prior. Pixels
        # with a blur prior fit the decoded features' noise (see the gan page's generator comparison).
        # The budget: benchmarks/gan_budget.py (2026-11-27 zoo, 2 cores, 60 unseen probe scenes, PixCorr
        # with the true image for exact / shrunk, noisy stand-in features): 30 steps at lr 0.3, the
        # budget until then (set by the lowest feature loss, when a step through the wider VAE cost
        # 44 ms an image), 0.50 / 0.36; 60 at 0.3, 0.63 / 0.44; 30 at 0.1, 0.56 / 0.45; 60 at 0.1,
        # 0.68 / 0.53 (SSIM 0.34 / 0.30); 120 at 0.1, 0.77 / 0.56. A step costs ~10 ms an image.
        # The +G images also identify their scene better (two-way, from the stand-in features, 30 at
        # 0.3 -> 60 at 0.1): pixels 0.85 -> 0.95, CNN(Early) 0.89 -> 0.96, CNN(Middle) 0.87 -> 0.92,
        # CLIP(Late) 0.71 -> 0.77. At lr 0.3 the latent fits the targets' noise; 60 steps at 0.1 take
        # most of what 120 give, for ~2 min more of the book (4 subjects x 100 test images x 30 steps).
        # Adam, not the authors' SGD recipe: its learning rate (2 -> 1e-10) is in the units of the DGN's relu7 code
        # and Caffe's pixels, which the VAE latent has no counterpart of, and its 200 iterations would add ~55
        # minutes to the book on 2 cores. The rest of the authors' objective applies: the 1 / ||t||^2 weights, the
        # decoded layers rescaled to the training images' SD, the 4% contrast stretch (below).
        generator="vae",
        generator_steps=60,
        generator_lr=0.1,
        generator_size=64,
        # float64 (2026-12-02): in float32, AVX2 and AVX512 kernels gave +G images differing in 77% of their pixels
        # (benchmarks/cpu_capability.py), which moved Table 1's +G rows by up to 0.011 and flipped a claim's
        # verdict; in float64 they are identical. A step costs ~43 ms an image in batches of 10 (~86 ms in
        # batches of 100; float32: ~13 ms): +G took 371 s for subj01 on 2 cores (AVX2 kernels), ~90 s in float32.
        generator_dtype="float64",
        # float64 alone still let one image of subj07's 100 drift by 8 grey levels between AVX2 and AVX512 (the
        # differences accumulate over 60 steps); on a 2^-16 grid (~1% of Adam's smallest typical step here) the
        # two agree in every pixel of subj07's +G images (benchmarks/cpu_capability.py)
        generator_code_quantum=2.0**-16,
        generator_batch_size=10,
        generator_rescale_features=True,
        generator_contrast_pct=4.0,
        # one thread a product, on any machine (recon.threads): one against two threads moved the decoded features'
        # last bits and the +G images; `recon compute --workers 2` (make book) puts the second core to a second
        # process, which on 2 cores gets more done than a second thread (benchmarks/threads.py: 1.2 times)
        compute_threads=1,
        # float64 decoders (2026-12-05): in float32, MKL's branch (its own choice by CPU vendor and model, which
        # ATen's variables do not reach) moved the decoded features' float16 copies in 0.5% of values (smoke,
        # MKL_CBWR=AVX2 against AVX512 on one Intel Xeon; 0.2-1.6% between an AMD EPYC and an Intel Xeon), and +G
        # made of that other targets: on an AMD EPYC Table 1's +G rows moved by up to 0.013. In float64, rounded
        # once to float16, the decoded features are the same on every branch (benchmarks/cpu_capability.py)
        decoder_dtype="float64",
        z_encode_size=40,  # 64 x 320 / 512: the authors' ratio of encode size to generation size
        num_inference_steps=20,
        batch_size=64,
        alphas_lowdim=(1e-1, 1.0, 10.0, 1e2, 1e3, 1e4),
        alphas_highdim=(1e1, 1e2, 1e3, 1e4, 1e5),
        cache_dir=cache,
        overlap_list=Path(overrides.pop("overlap_list", root / "toy_extras" / "overlap_nsd_ids.csv")),
        zscore_betas_per_session=True,
        results_dir=default_results_dir("toy"),
    )
    return Profile(**(defaults | overrides))


def smoke(**overrides) -> Profile:
    """The toy profile shrunk to seconds per section: for tests of the notebooks, never for results."""
    cache = Path(overrides.pop("cache_dir", default_cache_dir()))
    simulation = SimulationConfig(n_shared=8, n_train=92, trials_per_session=100)
    settings = dict(n_samples=2, generator_steps=3, num_inference_steps=4, cv_folds=3, results_dir=None) | overrides
    return toy(cache_dir=cache, nsd_root=cache / "smoke-nsd", simulation=simulation, **settings).replace(name="smoke")
