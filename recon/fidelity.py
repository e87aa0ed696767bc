"""Every step of the pipeline beside the authors' code: their setting, the ``nsd`` and ``toy`` profiles'.

Each :class:`Step` reads its setting from a :class:`~recon.config.Profile` (or from the code the profiles
run), so the book's fidelity table (:func:`table`) is generated from the profiles and cannot drift from
them. A step states what following the authors means for a profile (``follows``); where a profile does not,
the step must say why (``why``), which ``tests/test_fidelity.py`` enforces. The authors' files are paths
in github yu-takagi/StableDiffusionReconstruction; steps whose computation is re-implemented from their
script and compared are checked in ``tests/test_authors_pipeline.py`` and ``tests/test_community_reader.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .config import TARGET_ROIS, Profile

from .profiles import get_profile

def _name(model_id: str) -> str:
    """A model id as the table shows it: Hub ids as they are, zoo folders as ``zoo/<name>``."""
    return f"zoo/{Path(model_id).name}" if Path(model_id).is_absolute() else model_id


def _zoo_models(p: Profile) -> bool:
    return Path(p.models.sd).is_absolute()


def _rois(target: str) -> Callable[[Profile], str]:
    def value(p: Profile) -> str:
        return ", ".join(TARGET_ROIS[target])
    return value


def _trial_averaged(p: Profile) -> str:
    from .experiment import TRIAL_AVERAGED

    return "averaged per image for " + ", ".join(sorted(TRIAL_AVERAGED)) + "; single trials for the rest"


def vgg19_layer_names() -> dict[str, str]:
    """torchvision VGG19 ``features`` index -> Caffe-style name (``2`` conv1_2, ``3`` relu1_2, ``4`` pool1)."""
    from torchvision.models.vgg import cfgs

    names, block, conv, index = {}, 1, 0, 0
    for width in cfgs["E"]:  # torchvision's own VGG19 layer list
        if width == "M":
            names[str(index)] = f"pool{block}"
            block, conv, index = block + 1, 0, index + 1
            continue
        conv += 1
        names[str(index)], names[str(index + 1)] = f"conv{block}_{conv}", f"relu{block}_{conv}"
        index += 2
    return names


def _sampler(p: Profile) -> str:
    from .sampling import noising_timesteps

    noised, first = noising_timesteps(p.num_inference_steps, p.strength, p.init_noise)
    return (f"DDIM, {p.num_inference_steps} steps, eta 0, strength {p.strength:g} (noised at {noised}, denoised "
            f"from {first}: {p.init_noise}'s), scale {p.guidance_scale:g}")


def _vgg_layers(p: Profile) -> str:
    known = vgg19_layer_names()
    names = [layer if layer.startswith("fc") else known.get(layer, f"features[{layer}]") for layer in p.vgg_layers]
    return ", ".join(names)


TOY_MODELS = ("toy: the zoo's tiny model of the same class, trained on the simulated world (no model hub is "
              "reachable where the book is built)")
TOY_CPU = "toy: the book runs on 2 CPU cores; the toy's images are 64 px"


@dataclass(frozen=True)
class Step:
    """One step of the pipeline. ``setting`` shows a profile's choice; ``follows`` says whether it is the
    authors' (None: the step is code every profile runs, the same as theirs); ``why`` gives, per profile
    name, the reason it is not."""

    stage: str
    step: str
    authors: str
    source: str
    setting: Callable[[Profile], object]
    follows: Callable[[Profile], bool] | None = None
    why: dict[str, str] = field(default_factory=dict)

    def reason(self, name: str) -> str:
        """Why profile ``name`` deviates here (``smoke``, the toy shrunk for tests, shares the toy's reasons)."""
        return self.why.get(name) or (self.why.get("toy", "") if name == "smoke" else "")

    def row(self, profile: Profile) -> tuple[str, bool]:
        same = True if self.follows is None else bool(self.follows(profile))
        return str(self.setting(profile)), same


STEPS: tuple[Step, ...] = (
    # ------------------------------------------------------------------ data
    Step("data", "sessions per subject", "all 37 (subj01, 02, 05, 07)", "codes/utils/make_subjmri.py",
         lambda p: p.n_sessions, lambda p: p.n_sessions == 37,
         {"toy": "toy: the simulated NSD is small enough for CI (its sessions and trials: the simulated NSD page)"}),
    Step("data", "betas", "raw betas / 300; each voxel standardised over the training trials by the decoder",
         "codes/utils/make_subjmri.py, codes/utils/ridge.py",
         lambda p: "z-scored per voxel within each session" if p.zscore_betas_per_session
         else "raw / 300, standardised by the decoder",
         lambda p: not p.zscore_betas_per_session,
         {"toy": "toy: the simulated brain drifts between sessions; the simulated NSD page measures both ways"}),
    Step("data", "test betas", "averaged over each test image's trials", "codes/utils/make_subjmri.py",
         lambda p: "averaged per test image"),
    # -------------------------------------------------------------- decoding
    Step("decoding", "ROIs of z", "early", "README (ridge.py --roi early)", _rois("z")),
    Step("decoding", "ROIs of c", "ventral", "README (ridge.py --roi ventral)", _rois("c")),
    Step("decoding", "ROIs of BLIP, DPT, VGG19", "early, ventral, midventral, midlateral, lateral, parietal",
         "README (ridge.py --roi ...)", _rois("blip")),
    Step("decoding", "training betas", "single trials; averaged per image for the VGG19 conv layers "
         "('conv' in the target name)", "codes/utils/ridge.py", _trial_averaged),
    Step("decoding", "decoder", "StandardScaler, then himalaya RidgeCV: 5 contiguous folds, an alpha per "
         "target, no intercept", "codes/utils/ridge.py",
         lambda p: f"StandardScaler + ridge (streamed), {p.cv_folds} contiguous folds, alpha per target, "
                   f"{'intercept' if p.decoder_intercept else 'no intercept'}",
         lambda p: p.cv_folds == 5 and not p.decoder_intercept,
         {"smoke": "smoke: 3 folds, for seconds per section"}),
    Step("decoding", "alphas of z and c", "1e-6 ... 1 (7 values)", "codes/utils/ridge.py",
         lambda p: ", ".join(f"{a:g}" for a in p.alphas_lowdim),
         lambda p: tuple(p.alphas_lowdim) == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
         {"toy": "toy: a grid for the simulated voxels' scale, set with the simulator, not NSD's"}),
    Step("decoding", "alphas of BLIP, DPT, VGG19", "1e4, 2e4, 4e4", "codes/utils/ridge.py",
         lambda p: ", ".join(f"{a:g}" for a in p.alphas_highdim),
         lambda p: tuple(p.alphas_highdim) == (1e4, 2e4, 4e4),
         {"toy": "toy: a grid for the simulated voxels' scale, set with the simulator, not NSD's"}),
    # ------------------------------------------------------------------- z, c
    Step("[30]", "z", "a sample of the VAE posterior × 0.18215, of the image Lanczos-resized to 320 px "
         "(4 × 40 × 40 for 512 px generation)", "codes/utils/img2feat_sd.py",
         lambda p: f"{'posterior sample' if p.z_latent == 'sample' else 'posterior mean'} at {p.z_size} px "
                   f"for {p.image_size} px generation",
         lambda p: p.z_latent == "sample" and p.z_size * 512 == 320 * p.image_size),
    Step("[30]", "img2img start from decoded z", "decoded z decoded by the VAE, clamped, to uint8, resized "
         "to 512 px (bicubic) and encoded again", "codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: "decoded to an image and encoded again" if p.z_init == "image" else "the decoded latent itself",
         lambda p: p.z_init == "image"),
    Step("[30]", "c", "the text encoder's last hidden state (77 × 768), averaged over the image's captions",
         "codes/utils/img2feat_sd.py", lambda p: "last hidden state averaged over the captions"),
    # --------------------------------------------------------------- +T BLIP
    Step("+T", "BLIP model", "model_base_capfilt_large.pth", "codes/caption/BLIP/img2feat_blip.py",
         lambda p: _name(p.models.blip), lambda p: not _zoo_models(p),
         {"toy": TOY_MODELS}),
    Step("+T", "BLIP input", "Lanczos to 240 px, [0, 1] pixels without mean / std normalisation "
         "(1 + 15 × 15 tokens)", "codes/caption/BLIP/img2feat_blip.py",
         lambda p: (f"{p.blip_image_size} px" if p.blip_image_size else "the processor's size")
         + (", mean / std normalised" if p.blip_normalise else ", [0, 1] pixels"),
         lambda p: p.blip_image_size == 240 and not p.blip_normalise,
         {"toy": "toy: the zoo's BLIP was trained at 64 px with normalised inputs; feeding it otherwise would "
                 "measure the tiny model's fragility, not the real one's"}),
    Step("+T", "caption decoding", "beam search, 3 beams, repetition penalty 1.5, 5-20 tokens counting the "
         "prompt 'a picture of ', which is then cut", "codes/caption/BLIP/decode_captions.py",
         lambda p: f"{p.caption_beams} beams, penalty {p.repetition_penalty:g}, {p.caption_min_length}-"
                   f"{p.caption_max_length} tokens, "
                   + (f"prompt {p.caption_prompt!r}" if p.caption_prompt else "no prompt"),
         lambda p: (p.caption_beams, p.repetition_penalty, p.caption_min_length, p.caption_max_length,
                    p.caption_prompt) == (3, 1.5, 5, 20, "a picture of "),
         {"toy": "toy: the zoo's BLIP was trained on bare captions, so it starts from BOS alone"}),
    # ------------------------------------------------------------------- +G
    Step("+G", "generator", "Shen et al.'s deep generator network (relu7 GAN), from a random code clipped to "
         "[0, 3 × fc7's range]",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py", lambda p: p.generator,
         lambda p: p.generator.startswith("dgn:"),
         {"nsd": "nsd: the DGN's weights are Caffe files that cannot be fetched here; generator='dgn:<file>' "
                 "takes converted ones (random start, clipped at 0; the upper bound needs their act_range file)", "toy": "toy: no DGN of the toy world exists; the zoo's VAE decoder "
                 "is its learned image prior"}),
    Step("+G", "VGG19 layers", "conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 before the ReLU, fc6, fc7, fc8",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py", _vgg_layers,
         lambda p: tuple(p.vgg_layers) == ("2", "7", "16", "25", "34", "fc6", "fc7", "fc8"),
         {"toy": "toy: the zoo's narrowed VGG19 has no fc layers, and its conv4_4 / conv5_4 lowered what +G "
                 "recovers (recon/config.py); its three conv layers are taken before the ReLU"}),
    Step("+G", "decoded VGG19 maps", "full resolution (~6.1M targets per image)", "codes/utils/ridge.py",
         lambda p: f"average-pooled to at most {p.vgg_pool} × {p.vgg_pool}", lambda p: False,
         {"nsd": "nsd: full maps would not fit the 64 GB disk (nsd_scale page)",
          "toy": "toy: as nsd, at 8 × 8 of its 64 px"}),
    Step("+G", "targets rescaled", "each decoded layer standardised over units, rescaled to the mean feature "
         "SD of 10,000 ImageNet images", "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py",
         lambda p: "to the SD over the subject's training images" if p.generator_rescale_features else "no",
         lambda p: p.generator_rescale_features,
         {"toy": "toy: as nsd"}),
    Step("+G", "loss", "squared error per layer, weighted by 1 / ‖t‖² (weights summing to 1)",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py",
         lambda p: "squared error per layer over ‖t‖²" + (", weights summing to 1" if p.generator_optimiser == "sgd"
                                                          else " (Adam: the same up to a scale it ignores)")),
    Step("+G", "optimisation", "SGD, lr 2 → 1e-10 linear, momentum 0.9, decay 0.01, gradient over its mean "
         "absolute value, 200 iterations", "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py, bdpy icnn.py",
         lambda p: (f"SGD, lr {p.generator_lr:g} → {p.generator_lr_end:g}, momentum {p.generator_momentum:g}, "
                    f"decay {p.generator_decay:g}, normalised gradient" if p.generator_optimiser == "sgd"
                    else f"Adam, lr {p.generator_lr:g}") + f", {p.generator_steps} iterations",
         lambda p: (p.generator_optimiser, p.generator_lr, p.generator_lr_end, p.generator_momentum,
                    p.generator_decay, p.generator_steps) == ("sgd", 2.0, 1e-10, 0.9, 0.01, 200),
         {"toy": "toy: the lr is in the units of the DGN's code and Caffe's pixels, which the VAE latent has no "
                 "counterpart of; 200 iterations would add ~55 min to the book (2 cores); float64 on a 2^-16 grid "
                 "so that every CPU gets the same images", "smoke": "smoke: 3 steps, as toy otherwise"}),
    Step("+G", "output", "clipped at the 4% extremes, stretched to 0-255, resized to 512 px (bicubic)",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py, codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: (f"{p.generator_contrast_pct:g}% extremes clipped, stretched, bicubic to {p.image_size} px"
                    if p.generator_contrast_pct else "clamped to [0, 1]"),
         lambda p: p.generator_contrast_pct == 4.0,
    ),
    # ------------------------------------------------------------ generation
    Step("generation", "Stable Diffusion", "sd-v1-4.ckpt (CompVis)", "codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: _name(p.models.sd), lambda p: not _zoo_models(p), {"toy": TOY_MODELS}),
    Step("generation", "sampler", "CompVis DDIM, 50 steps, eta 0, strength 0.8 (the init latent noised at "
         "timestep 801, denoised from 781), guidance scale 5",
         "codes/diffusion_sd1/diffusion_decoding.py, codes/diffusion_sd2/diffusion_decoding.py",
         _sampler,
         lambda p: (p.num_inference_steps, p.strength, p.guidance_scale, p.init_noise) == (50, 0.8, 5.0, "compvis"),
         {"toy": "toy: 20 steps (2 CPU cores); the zoo's scheduler is trained for them",
          "smoke": "smoke: 4 steps, for seconds per section"}),
    Step("generation", "resolution", "512 px", "codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: f"{p.image_size} px", lambda p: p.image_size == 512, {"toy": TOY_CPU}),
    Step("generation", "samples and their noise", "5 per image, drawn in turn from one stream seeded once "
         "per run (seed_everything)", "codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: f"{p.n_samples} per image, each from its own generator seeded by (seed, image, sample)",
         lambda p: False,
         {"nsd": "nsd: a sample's noise does not depend on which images run together or in what order; "
                 "the draws are distributed alike", "toy": "toy: as nsd",
          "smoke": "smoke: 2 samples, as nsd otherwise"}),
    # ------------------------------------------------------------------- +D
    Step("+D", "depth model", "DPT-Large (Intel/dpt-large), hidden states at backbone_out_indices, each "
         "layer decoded on its own", "codes/depth/img2feat_dpt.py, codes/depth/dptemb2dpt.py",
         lambda p: _name(p.models.dpt), lambda p: not _zoo_models(p), {"toy": TOY_MODELS}),
    Step("+D", "depth-conditioned generator", "SD 2 512-depth-ema.ckpt", "codes/diffusion_sd2/diffusion_decoding.py",
         lambda p: _name(p.models.sd_depth), lambda p: not _zoo_models(p), {"toy": TOY_MODELS}),
    # ---------------------------------------------------------------- control
    Step("control", "SD 2.0 (OpenCLIP)", "no script in the repository; the control page says which "
         "checkpoint and why", "—",
         lambda p: _name(p.models.sd2), lambda p: not _zoo_models(p),
         {"toy": TOY_MODELS}),
)


def table(profiles=("nsd", "toy")) -> pd.DataFrame:
    """One row per step: the authors' setting and file, each profile's setting, whether it is the authors',
    and why not where it is not."""
    loaded = [get_profile(name) if isinstance(name, str) else name for name in profiles]
    rows = []
    for step in STEPS:
        row = {"stage": step.stage, "step": step.step, "authors": step.authors, "authors' file": step.source}
        reasons = []
        for p in loaded:
            setting, same = step.row(p)
            row[p.name] = setting
            row[f"{p.name}: authors'?"] = "same" if same else "deviation"
            if not same and step.reason(p.name):
                reasons.append(step.reason(p.name))
        row["why"] = "; ".join(reasons)
        rows.append(row)
    return pd.DataFrame(rows)


def book_table(profiles=("nsd", "toy")) -> pd.DataFrame:
    """:func:`table` narrowed for a page: the authors' file after their setting, a deviation marked in the
    profile's own cell, indexed by stage and step (nine columns of prose do not fit beside the text)."""
    full = table(profiles)
    names = [p if isinstance(p, str) else p.name for p in profiles]
    shown = pd.DataFrame({"authors (file)": full["authors"] + " — " + full["authors' file"]})
    for name in names:
        deviates = full[f"{name}: authors'?"] == "deviation"
        shown[name] = full[name].where(~deviates, full[name] + " (deviation)")
    shown["why"] = full["why"]
    shown.index = pd.MultiIndex.from_frame(full[["stage", "step"]])
    return shown


def unexplained(profile: Profile) -> list[str]:
    """The steps where ``profile`` deviates from the authors without a reason (should be none)."""
    return [step.step for step in STEPS if not step.row(profile)[1] and not step.reason(profile.name)]
