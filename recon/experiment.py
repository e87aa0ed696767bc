"""One subject's whole analysis: data, stimulus features, decoders, reconstructions, scores.

Every expensive product is cached under a key made of everything it depends on (profile values,
model ids and zoo checksums, dataset location, subject), so the notebooks can share work: the
``table1`` notebook reuses what ``baseline`` or ``depth`` computed, and a second run is fast.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from . import decode, evaluate, features, methods, models, zoo
from .cache import Cache
from .config import MULTI_ROIS, STREAMS_ROIS, Profile, check_subject
from .nsd import NSDReader, SubjectData

#: decoding target -> ROIs it is decoded from (baseline as in [30]; the rest as in section 2.1)
TARGET_ROIS = {
    "z": ("early",),
    "c": ("ventral",),
    "c_sd2": ("ventral",),
    "blip": MULTI_ROIS,
    "dpt": MULTI_ROIS,
    "vgg": MULTI_ROIS,
}
LOW_DIMENSIONAL = {"z", "c", "c_sd2"}  # alpha grids differ, as in the authors' ridge.py


def ensure_dataset(profile: Profile, progress: bool = True) -> Path:
    """The profile's NSD root; a profile with a simulation writes its tree on first use."""
    if profile.simulation is not None and not profile.nsd_root.exists():
        from .simulate import simulate_nsd

        simulate_nsd(profile.nsd_root, profile.simulation, progress=progress)
    return profile.nsd_root


def _model_fingerprint(profile: Profile) -> dict:
    """Model ids, plus each local folder's manifest entry so a rebuilt zoo invalidates the cache."""
    out = {}
    for role, model_id in asdict(profile.models).items():
        path = Path(model_id)
        if path.is_dir() and (path.parent / zoo.MANIFEST).is_file():
            entry = zoo.read_manifest(path.parent)["models"].get(path.name, {})
            out[role] = {name: f["sha256"] for name, f in entry.get("files", {}).items()}
        else:
            out[role] = model_id
    return out


class Experiment:
    """Lazily computed, cached analysis of one subject under one profile."""

    def __init__(self, profile: Profile, subject: str, progress: bool = True):
        self.profile = profile
        self.subject = check_subject(subject)
        self.progress = progress
        self.cache = Cache(profile.cache_dir)
        self.reader = NSDReader(ensure_dataset(profile, progress), profile.trials_per_session)

    # ------------------------------------------------------------------ keys
    @cached_property
    def _dataset_key(self) -> dict:
        return {"root": str(self.profile.nsd_root.resolve()), "n_sessions": self.profile.n_sessions}

    @cached_property
    def _models_key(self) -> dict:
        return _model_fingerprint(self.profile)

    def _key(self, *extra) -> list:
        p = self.profile
        settings = dict(image_size=p.image_size, vgg=(p.vgg_layers, p.vgg_width_divisor, p.vgg_pool), seed=p.seed)
        return [self._dataset_key, self._models_key, settings, self.subject, *extra]

    # ------------------------------------------------------------------ data
    @cached_property
    def data(self) -> SubjectData:
        return self.reader.load_subject(self.subject, STREAMS_ROIS, self.profile.n_sessions)

    @cached_property
    def test_images(self) -> np.ndarray:
        return self.reader.images(self.data.test_ids)

    @cached_property
    def test_captions(self) -> list[list[str]]:
        return self.reader.captions(self.data.test_ids)

    @cached_property
    def _train_unique(self) -> tuple[np.ndarray, np.ndarray]:
        return np.unique(self.data.train_ids, return_inverse=True)

    # -------------------------------------------------------------- features
    def _compute_features(self, target: str, ids: np.ndarray) -> np.ndarray:
        p = self.profile
        if target in ("c", "c_sd2"):
            pipe = models.img2img(p, "sd" if target == "c" else "sd2")
            return features.text_embeddings(pipe, self.reader.captions(ids), progress=self.progress)
        images = self.reader.images(ids)
        if target == "z":
            return features.vae_latents(models.img2img(p), images, p.image_size, progress=self.progress)
        if target == "blip":
            return features.blip_vision(*models.blip(p), images, progress=self.progress)
        if target == "dpt":
            return features.dpt_hidden_states(*models.dpt(p), images, progress=self.progress)
        if target == "vgg":
            maps = features.vgg_features(models.vgg19_features(p), images, p.vgg_layers, p.vgg_pool, p.image_size,
                                         progress=self.progress)
            return np.concatenate([maps[layer] for layer in p.vgg_layers], axis=1)
        raise KeyError(f"unknown decoding target {target!r}; expected one of {list(TARGET_ROIS)}")

    def stimulus_features(self, target: str, split: str) -> np.ndarray:
        """True features of the train (one row per trial) or test (one row per image) stimuli."""
        if split == "test":
            ids = self.data.test_ids
        elif split == "train":
            ids = self._train_unique[0]
        else:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        entry = self.cache.get("features", self._key(target, ids), lambda: {"x": self._compute_features(target, ids)})
        x = entry["x"]
        return x[self._train_unique[1]] if split == "train" else x

    # --------------------------------------------------------------- decoding
    def decoded(self, target: str) -> dict[str, np.ndarray]:
        """Decoded test features of ``target``, with the decoder's chosen alphas and test accuracy."""
        p = self.profile
        rois = TARGET_ROIS[target]
        alphas = p.alphas_lowdim if target in LOW_DIMENSIONAL else p.alphas_highdim

        def fit():
            columns = self.data.columns(rois)
            decoder = decode.RidgeDecoder(alphas=alphas, cv=p.cv_folds, backend=p.ridge_backend)
            decoder.fit(self.data.train_betas[:, columns], self.stimulus_features(target, "train"))
            predicted = decoder.predict(self.data.test_betas[:, columns])
            r = decode.target_correlations(self.stimulus_features(target, "test"), predicted)
            return {"predicted": predicted, "alphas": decoder.best_alphas_, "test_r": r}

        return self.cache.get("decoded", self._key(target, rois, alphas, p.cv_folds), fit)

    # ------------------------------------------------------- decoded products
    @cached_property
    def decoded_captions(self) -> list[str]:
        p = self.profile

        def run():
            model, processor = models.blip(p)
            return {"captions": np.array(methods.captions_from_vision_features(
                model, processor, self.decoded("blip")["predicted"], repetition_penalty=p.repetition_penalty,
                num_beams=p.caption_beams, max_length=p.caption_max_length, min_length=p.caption_min_length,
                progress=self.progress))}

        key = self._key("captions", p.repetition_penalty, p.caption_beams, p.caption_max_length, p.caption_min_length)
        return [str(c) for c in self.cache.get("captions", key, run)["captions"]]

    @cached_property
    def decoded_depth(self) -> np.ndarray:
        p = self.profile

        def run():
            model, _ = models.dpt(p)
            return {"depth": methods.depth_from_hidden_states(model, self.decoded("dpt")["predicted"], p.image_size,
                                                              progress=self.progress)}

        return self.cache.get("depth", self._key("depth"), run)["depth"]

    @cached_property
    def gan_images(self) -> np.ndarray:
        p = self.profile

        def run():
            pipe = models.img2img(p)
            decoded = self.decoded("vgg")["predicted"]
            sizes = np.cumsum([0] + [self._vgg_width(layer) for layer in p.vgg_layers])
            targets = {layer: decoded[:, a:b] for layer, a, b in zip(p.vgg_layers, sizes[:-1], sizes[1:])}
            latent_shape = self.stimulus_features("z", "test").shape[1:]
            return {"images": methods.images_from_vgg_features(
                pipe.vae, models.vgg19_features(p), targets, latent_shape=latent_shape, layers=p.vgg_layers,
                pool=p.vgg_pool, steps=p.generator_steps, lr=p.generator_lr, seed=p.seed, progress=self.progress)}

        return self.cache.get("gan", self._key("gan", p.generator_steps, p.generator_lr), run)["images"]

    def _vgg_width(self, layer: str) -> int:
        p = self.profile
        probe = features.vgg_features(models.vgg19_features(p), self.test_images[:1], [layer], p.vgg_pool,
                                      p.image_size, progress=False)
        return probe[layer].shape[1]

    # --------------------------------------------------------- reconstruction
    def reconstruct(self, method: str, variant: str = "sd") -> np.ndarray:
        """(n_test, n_samples, H, W, 3) uint8 reconstructions for one of the paper's methods."""
        p = self.profile
        common = dict(n_samples=p.n_samples, strength=p.strength, guidance_scale=p.guidance_scale,
                      num_inference_steps=p.num_inference_steps, seed=p.seed, batch_size=p.batch_size,
                      progress=self.progress)

        def run():
            if method == "[30]":
                c_target = "c" if variant == "sd" else "c_sd2"
                images = methods.img2img(models.img2img(p, variant), self.decoded("z")["predicted"],
                                         prompt_embeds=self.decoded(c_target)["predicted"], **common)
            elif method == "+T":
                images = methods.img2img(models.img2img(p, variant), self.decoded("z")["predicted"],
                                         prompts=self.decoded_captions, **common)
            elif method == "+T+G":
                images = methods.img2img(models.img2img(p, variant), None, init_images=self.gan_images,
                                         prompts=self.decoded_captions, **common)
            elif method == "+T+G+D":
                images = methods.depth2img(models.depth2img(p), self.gan_images, self.decoded_depth,
                                           self.decoded_captions, **common)
            else:
                raise KeyError(f"unknown method {method!r}; expected one of [30], +T, +T+G, +T+G+D")
            return {"images": images}

        key = self._key("reconstruct", method, variant, common | {"progress": None})
        return self.cache.get("reconstructions", key, run)["images"]

    # ------------------------------------------------------------- evaluation
    @cached_property
    def _evaluator(self) -> evaluate.EvaluationFeatures:
        return evaluate.EvaluationFeatures(self.profile)

    def evaluation_features(self, images: np.ndarray, label: str) -> dict[str, np.ndarray]:
        """Table 1 features of the originals (label ``original``) or of reconstructions (flattened samples).

        The cache key holds the images' bytes, so any change upstream (samples, strength...) recomputes."""
        flat = images.reshape(-1, *images.shape[-3:])
        key = self._key("evaluation", label, images, self.profile.eval_resolution, self.profile.clip_eval_layers)
        feats = self.cache.get("evaluation", key, lambda: self._evaluator(flat, progress=self.progress))
        if images.ndim == 5:
            feats = {m: v.reshape(images.shape[0], images.shape[1], -1) for m, v in feats.items()}
        return feats

    def scores(self, method: str, variant: str = "sd", exclude_ids=None, protocol: str = "takagi") -> dict[str, float]:
        """Two-way identification of one method for every Table 1 metric (Takagi protocol by default)."""
        original = self.evaluation_features(self.test_images, "original")
        generated = self.evaluation_features(self.reconstruct(method, variant), f"{method}/{variant}")
        keep = None
        if exclude_ids is not None:
            keep = ~np.isin(self.data.test_ids, np.asarray(exclude_ids))
        return evaluate.identification_scores(original, generated, keep, protocol)

    def decoding_summary(self) -> pd.DataFrame:
        rows = []
        for target in ("z", "c", "blip", "dpt", "vgg"):
            d = self.decoded(target)
            rows.append({"target": target, "rois": ", ".join(TARGET_ROIS[target]), "dims": d["test_r"].size,
                         "mean test r": float(d["test_r"].mean()), "median alpha": float(np.median(d["alphas"]))})
        return pd.DataFrame(rows).set_index("target")
