"""The methods' recipes: what +T, +D, +G and each reconstruction make of their inputs, as pure functions.

Each takes the profile (its models and settings) and arrays, and returns arrays; none reads the cache or the
dataset. :class:`recon.experiment.Experiment` feeds them decoded or true inputs and caches what they return;
``benchmarks/nsd_dryrun.py`` feeds them random inputs on the real architectures. So the book, the dry run and the
oracle run one recipe per product.
"""

from __future__ import annotations

import numpy as np

from . import features, methods, models
from .config import Profile


def ridge_decode(decoder, X: np.ndarray, index: np.ndarray | None, X_test: np.ndarray, targets,
                 predicted: np.ndarray, *, on_target=None) -> np.ndarray:
    """The decoders' recipe: fit ``decoder`` (a :class:`~recon.ridge_streamed.StreamedRidgeCV`) on the training
    betas ``X`` (one row per trial of the image ``index`` names, or per image when ``index`` is None) and predict the
    test betas ``X_test`` into ``predicted``, for each ``(layer, Y)`` of ``targets``: layer None for one target, else
    DPT's layers one at a time, as the authors decode them, into ``predicted[:, layer]``. Later layers have the same
    trials, so they reuse the first layer's decomposition. ``on_target(layer, Y)`` sees each training target before
    the next is drawn (``targets`` may be a generator that frees it). Returns every column's chosen alpha, in order."""
    chosen = []
    for layer, Y in targets:
        if layer:
            decoder.fit_targets(Y)
        else:
            decoder.fit(X, Y, index)
        decoder.predict(X_test, out=predicted if layer is None else predicted[:, layer])
        if on_target is not None:
            on_target(layer, Y)
        chosen.append(np.array(decoder.best_alphas_, copy=True))
    return np.concatenate(chosen)


def captions(profile: Profile, vision_features: np.ndarray, *, progress=True, **batching) -> list[str]:
    """+T: the captions BLIP's text decoder writes from ViT features (decoded, or the seen images' own)."""
    p = profile
    model, processor = models.blip(p)
    return methods.captions_from_vision_features(
        model, processor, vision_features, repetition_penalty=p.repetition_penalty, num_beams=p.caption_beams,
        max_length=p.caption_max_length, min_length=p.caption_min_length, prompt=p.caption_prompt, progress=progress,
        **batching)


def depth(profile: Profile, hidden_states: np.ndarray, *, progress=True, **batching) -> np.ndarray:
    """+D: the depth maps DPT's neck and head make of backbone hidden states (decoded or true), at the image size."""
    model, _ = models.dpt(profile)
    return methods.depth_from_hidden_states(model, hidden_states, profile.image_size, progress=progress, **batching)


def feature_matching_options(profile: Profile) -> dict:
    """The keyword arguments of :func:`recon.methods.images_from_vgg_features` that the profile sets (every caller
    of +G passes these, so the book, the dry run and the GPU check run one recipe)."""
    p = profile
    return dict(layers=p.vgg_layers, pool=p.vgg_pool, steps=p.generator_steps, lr=p.generator_lr, seed=p.seed,
                batch_size=p.generator_batch_size, output_size=p.image_size, dtype=models.generator_dtype(p),
                code_quantum=p.generator_code_quantum, optimiser=p.generator_optimiser, lr_end=p.generator_lr_end,
                momentum=p.generator_momentum, decay=p.generator_decay, contrast_pct=p.generator_contrast_pct)


def gan_images(profile: Profile, vgg_matrix: np.ndarray, reference_std: dict[str, float] | None = None, *,
               progress=True, batch_size: int | None = None) -> np.ndarray:
    """+G: images optimised to match VGG19 features (one row per image, the profile's layers concatenated). With
    ``reference_std`` each layer is first rescaled to it, as the authors rescale decoded features; true features
    are matched as they are. With the authors' VGG19 (``models.vgg19`` "authors") the rescaling is theirs, bdpy's
    (:func:`recon.methods.rescale_as_bdpy`; the reference their feat_std0, :func:`recon.models.authors_feature_std`);
    with another VGG19, :func:`recon.methods.rescale_to_reference` (the SD over all of a layer's units)."""
    p = profile
    vgg = models.vgg19_features(p)
    widths = features.vgg_layer_widths(vgg, p.vgg_layers, p.vgg_pool, p.generator_size)
    targets = features.split_vgg_matrix(vgg_matrix, widths)
    if reference_std is not None and p.models.vgg19 == models.AUTHORS:
        targets = methods.rescale_as_bdpy(targets, reference_std, features.vgg_layer_channels(vgg, p.vgg_layers))
    elif reference_std is not None:
        targets = methods.rescale_to_reference(targets, reference_std)
    options = feature_matching_options(p) | ({"batch_size": batch_size} if batch_size else {})
    return methods.images_from_vgg_features(models.gan_generator(p), vgg, targets, **options, progress=progress)


def init_from_z(profile: Profile, variant: str, z: np.ndarray, *, progress=True) -> dict:
    """img2img's start from z (decoded, or the seen image's own): an image decoded from it and encoded again by the
    pipeline (``z_init`` "image", the authors'), or the latent itself ("latent")."""
    p = profile
    if p.z_init == "latent":
        return {"init_latents": z}
    images = methods.init_images_from_latents(models.img2img(p, variant).vae, z, p.image_size, progress=progress,
                                              autocast=models.sd_autocast(p))
    return {"init_latents": None, "init_images": images}


def text_to_image(profile: Profile, prompts, *, progress=True, batch_size: int | None = None) -> np.ndarray:
    """SD 1.4's text-to-image generations (n, n_samples, H, W, 3) from ``prompts``, with the reconstructions'
    sampling settings (guidance, steps, seed, batch) and arithmetic (:func:`recon.methods.text2img`)."""
    p = profile
    return methods.text2img(models.img2img(p, "sd"), prompts, n_samples=p.n_samples, size=p.image_size,
                            guidance_scale=p.guidance_scale, num_inference_steps=p.num_inference_steps, seed=p.seed,
                            batch_size=batch_size or p.batch_size, autocast=models.sd_autocast(p), progress=progress)


def reconstruct(profile: Profile, method: str, variant: str, inputs: dict, *, progress=True,
                batch_size: int | None = None) -> np.ndarray:
    """One run's generations (n_test, n_samples, H, W, 3) of one of the paper's methods from its ``inputs``
    (:data:`recon.config.METHOD_INPUTS`: ``z`` and ``c`` arrays, ``caption`` a list of prompts, ``gan`` images,
    ``depth`` maps), decoded or true. Each input is read only when the method uses it, so ``inputs`` may hold
    callables that produce it."""
    p = profile
    common = p.generation_settings | {"progress": progress} | ({"batch_size": batch_size} if batch_size else {})

    def read(name):
        value = inputs[name]
        return value() if callable(value) else value

    sd = common | {"autocast": models.sd_autocast(p)}  # img2img under autocast as the authors' SD 1.4; depth2img never
    if method == "[30]":
        return methods.img2img(models.img2img(p, variant), **init_from_z(p, variant, read("z"), progress=progress),
                               prompt_embeds=read("c"), **sd)
    if method == "+T":
        start = init_from_z(p, variant, read("z"), progress=progress)
        return methods.img2img(models.img2img(p, variant), **start, prompts=read("caption"), **sd)
    if method == "+T+G":
        return methods.img2img(models.img2img(p, variant), None, init_images=read("gan"), prompts=read("caption"),
                               **sd)
    if method == "+T+G+D":
        gan = read("gan")
        return methods.depth2img(models.depth2img(p), gan, read("depth"), read("caption"), **common)
    raise ValueError(f"unknown method {method!r}; expected one of [30], +T, +T+G, +T+G+D")
