"""Every step of the pipeline beside the authors' code: their setting, the ``nsd`` and ``toy`` profiles'.

Each :class:`Step` reads its setting from a :class:`~recon.config.Profile` (or from the code the profiles
run), so the book's fidelity table (:func:`table`) is generated from the profiles and cannot drift from
them. The authors' files are paths in github yu-takagi/StableDiffusionReconstruction (``codes/gan/bdpy`` is
the copy of KamitaniLab/bdpy they ship).

A step has one of four verdicts per profile:

- ``same``: the profile follows the authors, and a test re-implements their step from their script and checks
  recon's against it; the step names the test (``checked_by``, ``tests/<file>.py::<function>``), and
  ``tests/test_fidelity.py`` fails if the function does not exist;
- ``same setting, no test``: the profile's setting is the authors', but no test re-implements the step (a
  model id, a resolution): nothing but the setting's value is checked;
- ``deviation``: the profile does not follow them; the step says why (``why``), which
  ``tests/test_fidelity.py`` enforces;
- ``no authors' setting``: the authors publish none (the control analysis).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .config import TARGET_ROIS, Profile

from .profiles import get_profile

SAME = "same"
UNTESTED = "same setting, no test"
DEVIATION = "deviation"
NO_SETTING = "no authors' setting"
VERDICTS = (SAME, UNTESTED, DEVIATION, NO_SETTING)

#: What the authors' scripts load, as the Hub (or torchvision) id that holds the same weights; None where no
#: id is documented as their checkpoint. SD 1.4: their sd-v1-4.ckpt is hosted by
#: CompVis/stable-diffusion-v-1-4-original, whose card points to this id for the diffusers weights. SD 2
#: depth: stabilityai/stable-diffusion-2-depth hosts their 512-depth-ema.ckpt beside its diffusers weights.
#: DPT and CLIP: their scripts load these ids. AlexNet and Inception-v3: torchvision's ``pretrained=True``, the
#: IMAGENET1K_V1 weights. BLIP: no Hub id is documented as model_base_capfilt_large.pth (the +T row). VGG19:
#: theirs is the Caffe VGG_ILSVRC_19_layers, which torchvision does not have; "authors" reads it from the Kamitani
#: lab cookbook's file (recon.kamitani, the +G row).
AUTHORS_MODELS = {
    "sd": "CompVis/stable-diffusion-v1-4",
    "sd_depth": "stabilityai/stable-diffusion-2-depth",
    "dpt": "Intel/dpt-large",
    "clip_eval": "openai/clip-vit-large-patch14",
    "alexnet": "IMAGENET1K_V1",
    "inception": "IMAGENET1K_V1",
    "blip": None,
    "vgg19": "authors",
}

#: NSD's stimuli are 425 x 425 px (nsd_stimuli.hdf5's imgBrick), which recon reads as stored
NSD_STIMULUS_PX = 425
#: DPT-Large's depth map side: its 1 + 24 x 24 tokens (the 577 that the authors' dptemb2dpt.py reshapes to) of
#: 16 px patches, a 384 px input, whose size its head returns the map at
DPT_LARGE_DEPTH_PX = 384

#: the ROIs the authors' README passes to ridge.py for each target
AUTHORS_ROIS = {"z": ("early",), "c": ("ventral",),
                "multi": ("early", "ventral", "midventral", "midlateral", "lateral", "parietal")}

#: the tests named below, by file
AUTHORS_PIPELINE = "tests/test_authors_pipeline.py"
COMMUNITY_READER = "tests/test_community_reader.py"
SAMPLING = "tests/test_sampling.py"
AUTHORS_GAN = "tests/test_authors_gan.py"
EVALUATE = "tests/test_evaluate.py"


def _name(model_id: str) -> str:
    """A model id as the table shows it: Hub ids as they are, zoo folders as ``zoo/<name>``."""
    return f"zoo/{Path(model_id).name}" if Path(model_id).is_absolute() else model_id


def _model(field_name: str) -> Callable[[Profile], str]:
    return lambda p: _name(getattr(p.models, field_name))


def _authors_model(*field_names: str) -> Callable[[Profile], bool]:
    """Whether the profile loads the weights the authors load (an id equal to :data:`AUTHORS_MODELS`')."""
    return lambda p: all(getattr(p.models, name) == AUTHORS_MODELS[name] for name in field_names)


def _rois(target: str) -> Callable[[Profile], str]:
    def value(p: Profile) -> str:
        return ", ".join(TARGET_ROIS[target])
    return value


def _authors_rois(*targets: str, authors: str) -> Callable[[Profile], bool]:
    return lambda p: all(tuple(TARGET_ROIS[target]) == AUTHORS_ROIS[authors] for target in targets)


def _trial_averaged() -> set[str]:
    from .experiment import TRIAL_AVERAGED

    return set(TRIAL_AVERAGED)


def _single_trials(p: Profile) -> str:
    rest = sorted(set(TARGET_ROIS) - _trial_averaged())
    return "single trials for " + ", ".join(rest)


def _vgg_training_betas(p: Profile) -> str:
    fc = [layer for layer in p.vgg_layers if layer.startswith("fc")]
    return ("averaged per image for every VGG19 layer" + (f" ({', '.join(fc)} too)" if fc else "")
            + ", rows sorted by 73k id (Experiment.train_image_ids)")


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


def _noised_above_first(p: Profile) -> str:
    from .sampling import noising_timesteps

    noised, first = noising_timesteps(p.num_inference_steps, p.strength, p.init_noise)
    return ("keeps it" if noised != first else "departs") + f": noised at {noised}, denoised from {first}"


def _vgg_layers(p: Profile) -> str:
    known = vgg19_layer_names()
    names = [layer if layer.startswith("fc") else known.get(layer, f"features[{layer}]") for layer in p.vgg_layers]
    return ", ".join(names)


def _vgg_network(p: Profile) -> str:
    if p.models.vgg19 == AUTHORS_MODELS["vgg19"]:
        order = ("RGB minus the BGR-ordered means, as their targets" if p.vgg19_channel_order == "authors"
                 else "BGR minus the means, as Caffe trained it")
        return f"the authors' Caffe VGG19 from the cookbook's .pt (recon.kamitani), 0-255 {order}, PIL bilinear 224 px"
    weights = _name(p.models.vgg19)
    if p.vgg_width_divisor != 1:
        return f"{weights}: torchvision's VGG19 narrowed to 1/{p.vgg_width_divisor} width, RGB, ImageNet mean / SD"
    return f"torchvision VGG19 {weights}, RGB in [0, 1] normalised by ImageNet's mean / SD"


def _rescaling(p: Profile) -> str:
    if not p.generator_rescale_features:
        return "no"
    if p.models.vgg19 == AUTHORS_MODELS["vgg19"]:
        return ("bdpy's formula (methods.rescale_as_bdpy) with the authors' feat_std0, on the decoded maps as "
                f"stored (pooled to at most {p.vgg_pool} × {p.vgg_pool}: a channel's SD over fewer, smoother cells)")
    return ("divided by the SD over all of the layer's units (ddof 1), conv maps too; times the mean over units of "
            "each unit's SD over the subject's training images (methods.rescale_to_reference)")


def _authors_colour_order(p: Profile) -> bool:
    return (p.models.vgg19 == AUTHORS_MODELS["vgg19"] and p.generator == "authors"
            and p.vgg19_channel_order == "authors")


def _stimulus_px(p: Profile) -> int:
    """The side at which recon reads the stimuli: NSD's, or the simulated NSD's."""
    return getattr(p.simulation, "image_size", NSD_STIMULUS_PX) if p.simulation is not None else NSD_STIMULUS_PX


def _dpt_input(p: Profile) -> str:
    return f"the stimulus as stored ({_stimulus_px(p)} px) straight into the processor (features.dpt_hidden_states)"


def _dpt_depth_px(p: Profile) -> int | None:
    """The side of the depth map DPT's head returns: DPT-Large's, or, for a zoo DPT, 16 px per row of its tokens
    (its input side over its patch size), as DPT's neck and head with their default reassemble factors (4, 2, 1,
    0.5) return it (DPT-Large: 24 rows, 384 px; tests/test_authors_pipeline.py measures the toy's)."""
    if p.models.dpt == AUTHORS_MODELS["dpt"]:
        return DPT_LARGE_DEPTH_PX
    folder = Path(p.models.dpt)
    try:
        size = json.loads((folder / "preprocessor_config.json").read_text())["size"]["height"]
        patch = json.loads((folder / "config.json").read_text())["patch_size"]
    except (OSError, KeyError, ValueError):
        return None
    return size // patch * 16


def _depth_map(p: Profile) -> str:
    side = _dpt_depth_px(p)
    return (f"DPT's {side if side else '?'} px map bicubic to {p.image_size} px (recipes.depth), then diffusers' "
            f"depth2img bicubic to the latent size and min-max to [-1, 1]: two resamplings")


def _evaluation_networks(p: Profile) -> str:
    return (f"AlexNet {_name(p.models.alexnet)}, Inception-v3 {_name(p.models.inception)}, "
            f"CLIP {_name(p.models.clip_eval)}")


def _cnn_input(p: Profile) -> str:
    return (f"bilinear (torch, antialiased, in float) of the short side to {p.eval_resolution} px, centre crop, "
            f"ImageNet mean / SD; the same tensor to both")


def _clip_features(p: Profile) -> str:
    early, middle = p.clip_eval_layers
    return (f"the processor's input; the vision tower's hidden states {early} and {middle}, the projected pooled "
            f"output (not L2-normalised: r does not see the scale)")


def _model_arithmetic(p: Profile) -> str:
    scope = (f"SD img2img under torch.autocast({p.sd_autocast}) from the z decoding to the last image, the init "
             f"image and the captions encoded before it" if p.sd_autocast else "no autocast")
    return f"every transformers / diffusers model's weights in {p.dtype} (dtype); {scope}; torchvision's float32"


def _evaluation_precision(p: Profile) -> str:
    return (f"AlexNet, Inception-v3 float32, CLIP {p.dtype}; r from float32 products summed in float64 "
            f"(evaluate.correlation_matrix)")


TOY_MODELS = ("toy: the zoo's tiny model of the same class, trained on the simulated world (no model hub is "
              "reachable where the book is built)")
TOY_CPU = "toy: the book runs on 2 CPU cores; the toy's images are 64 px"


@dataclass(frozen=True)
class Step:
    """One step of the pipeline. ``setting`` shows a profile's choice; ``follows`` says whether it is the
    authors' (None: the step is code every profile runs, the same as theirs); ``why`` gives, per profile
    name, the reason it is not. ``checked_by`` names the tests that re-implement the authors' step and check
    recon's against it (``tests/<file>.py::<function>``); ``checked_for`` narrows them to the profiles whose
    setting they run (None: every profile's). ``published`` is False where the authors publish no setting."""

    stage: str
    step: str
    authors: str
    source: str
    setting: Callable[[Profile], object]
    follows: Callable[[Profile], bool] | None = None
    why: dict[str, str] = field(default_factory=dict)
    checked_by: str | tuple[str, ...] | None = None
    checked_for: Callable[[Profile], bool] | None = None
    published: bool = True

    @property
    def tests(self) -> tuple[str, ...]:
        """``checked_by`` as a tuple (empty without a test)."""
        if self.checked_by is None:
            return ()
        return (self.checked_by,) if isinstance(self.checked_by, str) else tuple(self.checked_by)

    def reason(self, name: str) -> str:
        """Why profile ``name`` deviates here (``smoke``, the toy shrunk for tests, shares the toy's reasons)."""
        return self.why.get(name) or (self.why.get("toy", "") if name == "smoke" else "")

    def verdict(self, profile: Profile) -> str:
        """One of :data:`VERDICTS`: "same" only where a test checks the profile's step against the authors'."""
        if not self.published:
            return NO_SETTING
        if self.follows is not None and not self.follows(profile):
            return DEVIATION
        tested = bool(self.tests) and (self.checked_for is None or self.checked_for(profile))
        return SAME if tested else UNTESTED

    def row(self, profile: Profile) -> tuple[str, str]:
        return str(self.setting(profile)), self.verdict(profile)


def _test(file: str, function: str) -> str:
    return f"{file}::{function}"


def _authors_test(function: str) -> str:
    return _test(AUTHORS_PIPELINE, function)


AUTHORS_PREPARATION = _test(COMMUNITY_READER, "test_the_authors_preparation_gives_recons_trials_voxels_and_test_betas")
AUTHORS_RIDGE = _authors_test("test_decoders_equal_the_authors_ridge_value_for_value")
AUTHORS_FEATURE_MATCHING = _authors_test("test_feature_matching_is_the_authors_recipe")
AUTHORS_SAMPLER = (_test(SAMPLING, "test_img2img_follows_the_compvis_sampler_step_for_step"),
                   _test(SAMPLING, "test_the_authors_start_keeps_0191_of_the_init_latent"))
ALPHA_GRIDS = _authors_test("test_alpha_grids_go_to_the_targets_the_authors_give_them")

STEPS: tuple[Step, ...] = (
    # ------------------------------------------------------------------ data
    Step("data", "sessions per subject", "all 37 (subj01, 02, 05, 07)", "codes/utils/make_subjmri.py",
         lambda p: p.n_sessions, lambda p: p.n_sessions == 37,
         {"toy": "toy: the simulated NSD is small enough for CI (its sessions and trials: the simulated NSD page)"},
         checked_by=AUTHORS_PREPARATION),
    Step("data", "betas", "NSD's int16 values as the hdf5 stores them (beta × 300; NSDAccess.read_betas); each "
         "voxel standardised over the training trials by the decoder's StandardScaler",
         "codes/utils/make_subjmri.py, codes/utils/nsd_access/nsda.py, codes/utils/ridge.py",
         lambda p: "z-scored per voxel within each session" if p.zscore_betas_per_session
         else "the int16 values / 300 (float32), standardised by the decoder: a scale the standardisation removes",
         lambda p: not p.zscore_betas_per_session,
         {"toy": "toy: the simulated brain drifts between sessions; the simulated NSD page measures both ways"},
         checked_by=(AUTHORS_PREPARATION, _authors_test("test_the_decoder_sees_the_authors_int16_betas_as_ours"))),
    Step("data", "test betas", "averaged over each test image's trials", "codes/utils/make_subjmri.py",
         lambda p: "averaged per test image", checked_by=AUTHORS_PREPARATION),
    # -------------------------------------------------------------- decoding
    Step("decoding", "ROIs of z", "early", "README (ridge.py --roi early), codes/utils/make_subjmri.py", _rois("z"),
         _authors_rois("z", authors="z"), checked_by=AUTHORS_PREPARATION),
    Step("decoding", "ROIs of c", "ventral", "README (ridge.py --roi ventral), codes/utils/make_subjmri.py",
         _rois("c"), _authors_rois("c", authors="c"), checked_by=AUTHORS_PREPARATION),
    Step("decoding", "ROIs of BLIP, DPT, VGG19", "early, ventral, midventral, midlateral, lateral, parietal",
         "README (ridge.py --roi ...), codes/utils/make_subjmri.py", _rois("blip"),
         _authors_rois("blip", "dpt", "vgg", authors="multi"), checked_by=AUTHORS_PREPARATION),
    Step("decoding", "training betas", "single trials for init_latent, c, blip and dpt_emb0-3 (ridge.py averages "
         "only targets whose name contains 'conv')", "codes/utils/ridge.py", _single_trials,
         lambda p: _trial_averaged() == {"vgg"}, checked_by=AUTHORS_RIDGE),
    Step("decoding", "training betas of VGG19", "conv layers: averaged per image (betas_ave_tr), rows in the order "
         "each image was first shown (stims_unique), the order ridge.py's 5 contiguous folds split; fc6-fc8: no "
         "runnable setting: ridge.py would fit them on single trials ('conv' not in the name) against "
         "make_subjstim_vgg19.py's one feature row per image",
         "codes/utils/ridge.py, codes/utils/make_subjmri.py, codes/gan/make_subjstim_vgg19.py",
         _vgg_training_betas, lambda p: False,
         {"nsd": "nsd: fc6-fc8 are a reading, as their published path cannot run (single-trial betas against one "
                 "feature row per image, and file names that ridge.py does not read: quirks below); recon averages "
                 "them per image as the conv layers, the one reading under which the rows match. And the per-image "
                 "rows are sorted by 73k id, not in first-showing order, so the 5 folds hold other images and may "
                 "choose other alphas",
          "toy": "toy: the per-image rows are sorted by 73k id, not in first-showing order, so the 5 folds hold "
                 "other images (the toy has no fc layers)"}),
    Step("decoding", "decoder", "StandardScaler, then himalaya RidgeCV: 5 contiguous folds, an alpha per "
         "target, no intercept", "codes/utils/ridge.py",
         lambda p: f"StandardScaler + ridge (streamed), {p.cv_folds} contiguous folds, alpha per target, "
                   f"{'intercept' if p.decoder_intercept else 'no intercept'}",
         lambda p: p.cv_folds == 5 and not p.decoder_intercept,
         {"smoke": "smoke: 3 folds, for seconds per section"}, checked_by=AUTHORS_RIDGE),
    Step("decoding", "alphas of z and c", "1e-6 ... 1 (7 values)", "codes/utils/ridge.py",
         lambda p: ", ".join(f"{a:g}" for a in p.alphas_lowdim),
         lambda p: tuple(p.alphas_lowdim) == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
         {"toy": "toy: a grid for the simulated voxels' scale, set with the simulator, not NSD's"},
         checked_by=ALPHA_GRIDS),
    Step("decoding", "alphas of BLIP, DPT, VGG19", "1e4, 2e4, 4e4", "codes/utils/ridge.py",
         lambda p: ", ".join(f"{a:g}" for a in p.alphas_highdim),
         lambda p: tuple(p.alphas_highdim) == (1e4, 2e4, 4e4),
         {"toy": "toy: a grid for the simulated voxels' scale, set with the simulator, not NSD's"},
         checked_by=ALPHA_GRIDS),
    Step("decoding", "stored features", "float32 (.npy and .mat of float32 arrays; ridge.py's predictions float32)",
         "codes/utils/img2feat_sd.py, codes/utils/ridge.py, codes/gan/make_vgg19bdpy.py",
         lambda p: f"{p.feature_dtype} (feature_dtype), features and decoded features"
                   + (f"; {', '.join(p.features_float16)} float16" if p.features_float16 else ""),
         lambda p: p.feature_dtype == "float32" and not p.features_float16,
         {"nsd": "nsd: DPT's in float16 (features_float16): in float32 its features, predictions and the training "
                 "features of one layer would need 16.2 GB more: 72.2 GB against the 64 GB disk "
                 "(benchmarks/nsd_scale.py)",
          "toy": "toy: float16 throughout, as its committed results were built"}),
    # ------------------------------------------------------------------- z, c
    Step("[30]", "z", "a sample of the VAE posterior × 0.18215, of the image Lanczos-resized to 320 px "
         "(4 × 40 × 40 for 512 px generation)", "codes/utils/img2feat_sd.py",
         lambda p: f"{'posterior sample' if p.z_latent == 'sample' else 'posterior mean'} at {p.z_size} px "
                   f"for {p.image_size} px generation",
         lambda p: p.z_latent == "sample" and p.z_size * 512 == 320 * p.image_size,
         checked_by=_authors_test("test_z_is_the_authors_init_latent")),
    Step("[30]", "img2img start from decoded z", "decoded z decoded by the VAE, clamped, to uint8, resized "
         "to 512 px (bicubic) and encoded again", "codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: "decoded to an image and encoded again" if p.z_init == "image" else "the decoded latent itself",
         lambda p: p.z_init == "image", checked_by=_authors_test("test_init_image_is_the_authors_decoded_z")),
    Step("[30]", "c", "the CLIP text encoder's last hidden state (77 × 768; padded to 77, truncated), averaged "
         "over the image's COCO captions",
         "codes/utils/img2feat_sd.py, codes/diffusion_sd1/stable-diffusion/ldm/modules/encoders/modules.py",
         lambda p: "last hidden state averaged over the captions",
         checked_by=_authors_test("test_c_is_the_authors_caption_average")),
    # --------------------------------------------------------------- +T BLIP
    Step("+T", "BLIP model", "model_base_capfilt_large.pth: BLIP's pre-trained ViT-B (CapFilt-L), not its COCO "
         "caption fine-tune model_base_caption_capfilt_large.pth (BLIP's README)",
         "codes/caption/BLIP/img2feat_blip.py, codes/caption/BLIP/decode_captions.py",
         _model("blip"), _authors_model("blip"),
         {"nsd": "nsd: no Hub id is documented as model_base_capfilt_large.pth: the card of "
                 "Salesforce/blip-image-captioning-base describes captioning pretrained on COCO, while "
                 "transformers' convert_blip_original_pytorch_to_hf.py converts model_base_capfilt_large.pth; "
                 "which weights the id holds is not verified here",
          "toy": TOY_MODELS}),
    Step("+T", "BLIP input", "Lanczos to 240 px, [0, 1] pixels without mean / std normalisation "
         "(1 + 15 × 15 tokens)", "codes/caption/BLIP/img2feat_blip.py",
         lambda p: (f"{p.blip_image_size} px" if p.blip_image_size else "the processor's size")
         + (", mean / std normalised" if p.blip_normalise else ", [0, 1] pixels"),
         lambda p: p.blip_image_size == 240 and not p.blip_normalise,
         {"toy": "toy: the zoo's BLIP was trained at 64 px with normalised inputs; feeding it otherwise would "
                 "measure the tiny model's fragility, not the real one's"},
         checked_by=_authors_test("test_blip_input_is_the_authors")),
    Step("+T", "caption decoding", "beam search, 3 beams, repetition penalty 1.5, 5-20 tokens counting the "
         "prompt 'a picture of ', which is then cut", "codes/caption/BLIP/decode_captions.py",
         lambda p: f"{p.caption_beams} beams, penalty {p.repetition_penalty:g}, {p.caption_min_length}-"
                   f"{p.caption_max_length} tokens, "
                   + (f"prompt {p.caption_prompt!r}" if p.caption_prompt else "no prompt"),
         lambda p: (p.caption_beams, p.repetition_penalty, p.caption_min_length, p.caption_max_length,
                    p.caption_prompt) == (3, 1.5, 5, 20, "a picture of "),
         {"toy": "toy: the zoo's BLIP was trained on bare captions, so it starts from BOS alone"},
         checked_by=_authors_test("test_captions_with_the_authors_prompt")),
    # ------------------------------------------------------------------- +G
    Step("+G", "generator", "Shen et al.'s deep generator network (relu7 GAN), from a random code clipped to "
         "[0, 3 × fc7's range]",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py", lambda p: p.generator,
         lambda p: p.generator == "authors",
         {"nsd": "nsd: the default is theirs, from the Kamitani lab cookbook's files (authors_gan_dir), which "
                 "cannot be fetched here; generator 'pixels', for a run without them, optimises the image's pixels "
                 "with no image prior (dgn:<file> is an older approximation: 227 px crop resized, pixels clamped, "
                 "no upper bound)",
          "toy": "toy: no DGN of the toy world exists; the zoo's VAE decoder is its learned image prior"},
         checked_by=_test(AUTHORS_GAN, "test_feature_matching_steps_are_bdpy_s_with_the_authors_generator"),
         checked_for=lambda p: p.generator == "authors"),
    Step("+G", "VGG19 network", "Caffe's VGG_ILSVRC_19_layers converted to PyTorch (bdpy's VGG19, figshare "
         "brain-decoding-cookbook), BGR in Caffe's 0-255 units minus the ImageNet mean, 224 px",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py, codes/gan/make_vgg19bdpy.py, README",
         _vgg_network, _authors_model("vgg19"),
         {"nsd": "nsd: the default is their Caffe VGG19 from the cookbook's file; models.vgg19 'IMAGENET1K_V1' "
                 "(torchvision's, for a run without the file) has the authors' layers under the same names but its "
                 "own weights (another training) and its own input convention, so its features are not theirs",
          "toy": "toy: the zoo's VGG19, narrowed and trained on the simulated world"},
         checked_by=(_test(AUTHORS_GAN, "test_stimulus_features_are_make_vgg19bdpy_s"),
                     _test(AUTHORS_GAN, "test_feature_matching_steps_are_bdpy_s_with_the_authors_generator")),
         checked_for=lambda p: p.models.vgg19 == AUTHORS_MODELS["vgg19"]),
    Step("+G", "VGG19 layers", "conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 before the ReLU, fc6, fc7, fc8",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py", _vgg_layers,
         lambda p: tuple(p.vgg_layers) == ("2", "7", "16", "25", "34", "fc6", "fc7", "fc8"),
         {"toy": "toy: the zoo's narrowed VGG19 has no fc layers, and its conv4_4 / conv5_4 lowered what +G "
                 "recovers (recon/config.py); its three conv layers are taken before the ReLU"},
         checked_by=_authors_test("test_pre_relu_and_fc_layers_are_the_linear_outputs")),
    Step("+G", "decoded VGG19 maps", "full resolution (~6.1M targets per image)", "codes/utils/ridge.py",
         lambda p: f"average-pooled to at most {p.vgg_pool} × {p.vgg_pool}", lambda p: False,
         {"nsd": "nsd: full maps would not fit the 64 GB disk (nsd_scale page)",
          "toy": "toy: as nsd, at 8 × 8 of its 64 px"}),
    Step("+G", "targets rescaled", "bdpy normalize_feature on each image's layer: minus its mean over units, "
         "divided by the mean over channels of each channel's spatial SD (ddof 1; over all units for fc), times "
         "the mean of feat_std0 (the Caffe VGG19's features of 10,000 ImageNet images), plus the mean",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py, codes/gan/bdpy/bdpy/feature/feature.py",
         _rescaling,
         lambda p: p.generator_rescale_features and p.models.vgg19 == AUTHORS_MODELS["vgg19"],
         {"nsd": "nsd: the default (their VGG19) takes bdpy's formula and their feat_std0; with torchvision's "
                 "VGG19 the SD over all units is not bdpy's mean of the channels' spatial SDs, larger where channels "
                 "differ in mean (on fc layers the two agree), and the reference comes from the subject's training "
                 "images, since the authors' feat_std0 was measured on their Caffe network's features",
          "toy": "toy: as nsd"},
         checked_by=_test(AUTHORS_GAN, "test_decoded_features_rescaled_as_bdpy")),
    Step("+G", "loss", "squared error per layer, weighted by 1 / ‖t‖² (weights summing to 1)",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py, codes/gan/bdpy/bdpy/recon/torch/icnn.py",
         lambda p: "squared error per layer over ‖t‖²" + (", weights summing to 1" if p.generator_optimiser == "sgd"
                                                          else " (Adam: the same up to a scale it ignores)"),
         checked_by=AUTHORS_FEATURE_MATCHING, checked_for=lambda p: p.generator_optimiser == "sgd"),
    Step("+G", "optimisation", "SGD, lr 2 → 1e-10 linear, momentum 0.9, decay 0.01, gradient over its mean "
         "absolute value, 200 iterations",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py, codes/gan/bdpy/bdpy/recon/torch/icnn.py",
         lambda p: (f"SGD, lr {p.generator_lr:g} → {p.generator_lr_end:g}, momentum {p.generator_momentum:g}, "
                    f"decay {p.generator_decay:g}, normalised gradient" if p.generator_optimiser == "sgd"
                    else f"Adam, lr {p.generator_lr:g}") + f", {p.generator_steps} iterations",
         lambda p: (p.generator_optimiser, p.generator_lr, p.generator_lr_end, p.generator_momentum,
                    p.generator_decay, p.generator_steps) == ("sgd", 2.0, 1e-10, 0.9, 0.01, 200),
         {"toy": "toy: the lr is in the units of the DGN's code and Caffe's pixels, which the VAE latent has no "
                 "counterpart of; 200 iterations would add ~55 min to the book (2 cores); float64 on a 2^-16 grid "
                 "so that every CPU gets the same images", "smoke": "smoke: 3 steps, as toy otherwise"},
         checked_by=AUTHORS_FEATURE_MATCHING),
    Step("+G", "output", "clipped at the 4% extremes, stretched to 0-255, resized to 512 px (bicubic)",
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py, codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: (f"{p.generator_contrast_pct:g}% extremes clipped, stretched, bicubic to {p.image_size} px"
                    if p.generator_contrast_pct else "clamped to [0, 1]"),
         lambda p: p.generator_contrast_pct == 4.0, checked_by=AUTHORS_FEATURE_MATCHING),
    # ------------------------------------------------------------ generation
    Step("generation", "Stable Diffusion", "sd-v1-4.ckpt (CompVis): CompVis/stable-diffusion-v1-4 on the Hub",
         "codes/diffusion_sd1/diffusion_decoding.py", _model("sd"), _authors_model("sd"), {"toy": TOY_MODELS}),
    Step("generation", "sampler", "CompVis DDIM, 50 steps, eta 0, strength 0.8 (the init latent noised at "
         "timestep 801, denoised from 781), guidance scale 5",
         "codes/diffusion_sd1/diffusion_decoding.py, codes/diffusion_sd2/diffusion_decoding.py",
         _sampler,
         lambda p: (p.num_inference_steps, p.strength, p.guidance_scale, p.init_noise) == (50, 0.8, 5.0, "compvis"),
         {"toy": "toy: 20 steps (2 CPU cores); the zoo's scheduler is trained for them",
          "smoke": "smoke: 4 steps, for seconds per section"},
         checked_by=AUTHORS_SAMPLER),
    Step("generation", "resolution", "512 px", "codes/diffusion_sd1/diffusion_decoding.py",
         lambda p: f"{p.image_size} px", lambda p: p.image_size == 512, {"toy": TOY_CPU}),
    Step("generation", "samples and their noise", "5 per image; SD 1.4: one test image per process after "
         "seed_everything(42), its posterior sample once, then each generation's noise; SD 2 depth: one stream "
         "through a process's images, a posterior sample and a noise per generation",
         "codes/diffusion_sd1/diffusion_decoding.py, codes/diffusion_sd2/diffusion_decoding.py",
         lambda p: (f"{p.n_samples} per image, " + (
             "each image's from one stream seeded by seed: the posterior sample once (+D: one per generation), then "
             "each generation's noise" if p.sample_noise == "authors"
             else "each from its own generator seeded by (seed, image, sample)")),
         lambda p: p.n_samples == 5 and p.sample_noise == "authors",
         {"toy": "toy: as nsd", "smoke": "smoke: 2 samples, as nsd otherwise",
          "nsd": "nsd: sample_noise 'independent' draws a sample's noise whatever images run with it"},
         checked_by="tests/test_sampling.py::test_every_images_kth_generation_starts_from_the_same_noise"),
    Step("generation", "model arithmetic", "float32 for z's VAE encoding, BLIP, DPT and the evaluation networks; "
         "SD 1.4 sampled under torch.autocast (float16 where autocast casts); SD 2 depth in float32 (its "
         "torch.autocast('cuda') is a bare expression, never entered)",
         "codes/utils/img2feat_sd.py, codes/caption/BLIP/img2feat_blip.py, codes/depth/img2feat_dpt.py, "
         "codes/diffusion_sd1/diffusion_decoding.py, codes/diffusion_sd2/diffusion_decoding.py, "
         "codes/utils/img2feat_decoded.py",
         _model_arithmetic, lambda p: p.dtype == "float32" and p.sd_autocast == "float16",
         {"nsd": "nsd: dtype 'float16' halves the weights' memory and departs from the authors' arithmetic",
          "toy": "toy: float32 on the CPU, SD 1.4's stand-in included (no autocast)"},
         checked_by=_test(SAMPLING, "test_sd_samples_under_autocast_as_the_authors_precision_scope_and_depth_never")),
    # ------------------------------------------------------------------- +D
    Step("+D", "depth model", "Intel/dpt-large", "codes/depth/img2feat_dpt.py, codes/depth/dptemb2dpt.py",
         _model("dpt"), _authors_model("dpt"), {"toy": TOY_MODELS}),
    Step("+D", "DPT input", "the stimulus Lanczos-resized to 512 px, then the processor (to DPT-Large's 384 px)",
         "codes/depth/img2feat_dpt.py", _dpt_input, lambda p: _stimulus_px(p) == p.image_size,
         {"nsd": "nsd: the Lanczos resize to 512 px before the processor's own resize is not reproduced: the "
                 "425 px stimulus goes to the processor as stored"},
         checked_by=_authors_test("test_dpt_hidden_states_are_the_authors_at_the_generation_size")),
    Step("+D", "DPT hidden states", "hidden_states[1:] at backbone_out_indices (4 layers of 577 × 1024), each "
         "layer decoded on its own", "codes/depth/img2feat_dpt.py, codes/depth/dptemb2dpt.py",
         lambda p: "hidden_states[1:] at backbone_out_indices, decoded one layer at a time",
         checked_by=_authors_test("test_dpt_hidden_states_are_the_authors_at_the_generation_size")),
    Step("+D", "depth map", "the neck and head on the decoded states; DPT's 384 px map bicubic to 64 × 64 once, "
         "then min-max to [-1, 1]", "codes/depth/dptemb2dpt.py", _depth_map,
         lambda p: _dpt_depth_px(p) == p.image_size,
         {"nsd": "nsd: recon keeps depth maps at the generation size (recipes.depth) and diffusers' pipeline "
                 "resizes what it is given to the latent size: 384 → 512 → 64 where the authors resize "
                 "384 → 64; the difference is not measured on NSD",
          "toy": "toy: as nsd, 128 → 64 → 16"},
         checked_by=_authors_test("test_depth_map_is_resampled_twice_where_the_authors_resample_once")),
    Step("+D", "depth-conditioned generator", "SD 2 512-depth-ema.ckpt: stabilityai/stable-diffusion-2-depth on "
         "the Hub", "codes/diffusion_sd2/diffusion_decoding.py",
         _model("sd_depth"), _authors_model("sd_depth"), {"toy": TOY_MODELS}),
    # ---------------------------------------------------------------- control
    Step("control", "SD 2.0 (OpenCLIP)", "no script in the repository; the control page says which "
         "checkpoint and why", "—", _model("sd2"), published=False),
    # ------------------------------------------------------------- evaluation
    Step("evaluation", "networks", "torchvision AlexNet and Inception-v3 (pretrained=True: IMAGENET1K_V1), "
         "CLIP openai/clip-vit-large-patch14", "codes/utils/img2feat_decoded.py",
         _evaluation_networks, _authors_model("alexnet", "inception", "clip_eval"),
         {"toy": "toy: seeded random-feature networks of AlexNet's and Inception-v3's architectures (full-size "
                 "ones would not fit the repository) and the zoo's CLIP"}),
    Step("evaluation", "CNN input", "PIL image, Resize(299) (PIL's bilinear on uint8), CenterCrop(299), "
         "ToTensor, ImageNet mean / SD; AlexNet gets Inception's input", "codes/utils/img2feat_decoded.py",
         _cnn_input, lambda p: p.eval_resolution == 299,
         {"toy": "toy: 96 px, for the CPU budget (book/how_built.md)"},
         checked_by=_authors_test("test_cnn_input_is_the_authors_within_a_grey_level")),
    Step("evaluation", "CNN layers", "Inception-v3's flatten (2048, after the average pool); AlexNet features.5, "
         "features.12, classifier.5", "codes/utils/img2feat_decoded.py",
         lambda p: "Inception-v3's avgpool, flattened; AlexNet features.5, features.12, classifier.5",
         checked_by=_authors_test("test_evaluation_features_are_the_authors_layers")),
    Step("evaluation", "CLIP features", "CLIPProcessor(text='', images=...) on the PIL image; image_embeds; the "
         "vision tower's hidden states 6 and 12", "codes/utils/img2feat_decoded.py",
         _clip_features, lambda p: tuple(p.clip_eval_layers) == (6, 12),
         {"toy": "toy: the zoo's CLIP vision tower has 3 layers: its hidden states 1 and 2 stand for 6 and 12"},
         checked_by=_authors_test("test_evaluation_features_are_the_authors_layers")),
    Step("evaluation", "precision", "float32 networks; r by np.corrcoef (float64)",
         "codes/utils/img2feat_decoded.py, codes/utils/identification.py",
         _evaluation_precision, lambda p: p.dtype == "float32",
         {"nsd": "nsd: dtype 'float16' runs CLIP in float16 (model arithmetic above)"},
         checked_by=_test(EVALUATE, "test_float32_products_equal_the_float64_einsum")),
    Step("evaluation", "identification", "r of the original with each of the 5 samples, averaged; image i wins "
         "against j when its mean r is strictly greater ('>': ties fail); the mean over images",
         "codes/utils/identification.py",
         lambda p: "the same (evaluate.correlation_matrix, identification_accuracy)",
         checked_by=(_authors_test("test_identification_is_the_authors_loop"),
                     _test(EVALUATE, "test_ties_count_as_failures"))),
    # -------------------------------------------------------- authors' quirks
    Step("authors' quirks", "init latent noised a step early", "stochastic_encode noises at ddim_timesteps[t_enc] "
         "(801), one DDIM step above the first step decode denoises (781)",
         "codes/diffusion_sd1/diffusion_decoding.py, codes/diffusion_sd1/stable-diffusion/ldm/models/diffusion/ddim.py",
         _noised_above_first,
         lambda p: p.init_noise == "compvis",
         {"nsd": "nsd: init_noise 'diffusers' noises at the first step denoised, as diffusers does"},
         checked_by=AUTHORS_SAMPLER),
    Step("authors' quirks", "VGG19 targets' file names", "make_subjstim_vgg19.py writes {subject}_{layer}_tr.npy "
         "and _te.npy; ridge.py reads {subject}_each_{target}_tr.npy and {subject}_ave_{target}_te.npy: as "
         "published, no VGG19 layer is decoded",
         "codes/gan/make_subjstim_vgg19.py, codes/utils/ridge.py",
         lambda p: "departs: every layer is decoded (one feature matrix, Experiment.decoded('vgg'))",
         lambda p: False,
         {"nsd": "nsd: a run must bridge the names to decode anything; then the conv layers run and fc6-fc8 "
                 "meet the row mismatch (training betas of VGG19, above)", "toy": "toy: as nsd"}),
    Step("authors' quirks", "colour order around VGG19", "make_vgg19bdpy.py feeds RGB (minus ilsvrc_2012_mean's "
         "BGR-ordered means) to the BGR Caffe network, while +G feeds it the generator's output as it comes (BGR "
         "to the generator, trained on Caffe's images), matching its channel k to the stimulus's channel k; the +G "
         "image is saved with its channels reversed twice (deprocess, then [2, 1, 0]), in that same order",
         "codes/gan/make_vgg19bdpy.py, codes/gan/bdpy/bdpy/dl/torch/torch.py, "
         "codes/gan/recon_icnn_image_vgg19_dgn_relu7gen_gd.py",
         lambda p: ("kept: the stimuli RGB minus the BGR-ordered means, the generator's output to VGG19 as it "
                    "comes, the +G image's channel k the generator's channel k plus the k-th mean"
                    if _authors_colour_order(p) else
                    "departs from both: RGB for the stimuli and the +G image alike; the +G image goes to Stable "
                    "Diffusion as generated"),
         _authors_colour_order,
         {"nsd": "nsd: the default (their generator and VGG19, vgg19_channel_order 'authors') keeps theirs; "
                 "vgg19_channel_order 'caffe' feeds the Caffe network BGR as it was trained; torchvision's VGG19 "
                 "takes one input convention for both, so there is no swap to undo, and Stable Diffusion gets the "
                 "colours in the stimulus's order, as after the authors' two reversals",
          "toy": "toy: as nsd"},
         checked_by=(_test(AUTHORS_GAN, "test_stimulus_features_are_make_vgg19bdpy_s"),
                     _test(AUTHORS_GAN, "test_the_authors_generator_hands_vgg19_its_output_as_it_comes")),
         checked_for=_authors_colour_order),
)


def table(profiles=("nsd", "toy")) -> pd.DataFrame:
    """One row per step: the authors' setting and file, each profile's setting and verdict (:data:`VERDICTS`),
    the tests that check it, and why a profile deviates where it does."""
    loaded = [get_profile(name) if isinstance(name, str) else name for name in profiles]
    rows = []
    for step in STEPS:
        row = {"stage": step.stage, "step": step.step, "authors": step.authors, "authors' file": step.source}
        reasons = []
        for p in loaded:
            setting, verdict = step.row(p)
            row[p.name] = setting
            row[f"{p.name}: authors'?"] = verdict
            if verdict == DEVIATION and step.reason(p.name):
                reasons.append(step.reason(p.name))
        row["checked by"] = ", ".join(step.tests)
        row["why"] = "; ".join(reasons)
        rows.append(row)
    return pd.DataFrame(rows)


#: how a profile's cell in the book marks a verdict other than "same"
CELL_MARKS = {SAME: "", UNTESTED: " (no test)", DEVIATION: " (deviation)", NO_SETTING: " (no authors' setting)"}


def _test_functions(tests: str) -> str:
    """``checked by`` as the book shows it: the test functions' names alone."""
    return ", ".join(test.split("::")[-1] for test in tests.split(", ") if test)


def book_table(profiles=("nsd", "toy")) -> pd.DataFrame:
    """:func:`table` narrowed for a page: the authors' file after their setting, a verdict other than "same"
    marked in the profile's own cell, the checking tests by function name, indexed by stage and step (ten
    columns of prose do not fit beside the text)."""
    full = table(profiles)
    names = [p if isinstance(p, str) else p.name for p in profiles]
    shown = pd.DataFrame({"authors (file)": full["authors"] + " — " + full["authors' file"]})
    for name in names:
        shown[name] = full[name] + full[f"{name}: authors'?"].map(CELL_MARKS)
    # a test's name is one long word: a break opportunity after each underscore keeps the table within the page
    shown["test"] = full["checked by"].map(_test_functions).str.replace("_", "_<wbr>", regex=False)
    shown["why"] = full["why"]
    shown.index = pd.MultiIndex.from_frame(full[["stage", "step"]])
    return shown


def unexplained(profile: Profile) -> list[str]:
    """The steps where ``profile`` deviates from the authors without a reason (should be none)."""
    return [step.step for step in STEPS if step.verdict(profile) == DEVIATION and not step.reason(profile.name)]
