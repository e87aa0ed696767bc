"""One subject's whole analysis: data, stimulus features, decoders, reconstructions, scores.

Every expensive product is cached under a key made of everything it depends on (profile values,
model ids and zoo checksums, dataset location, subject), so the notebooks can share work: the
``table1`` notebook reuses what ``baseline`` or ``depth`` computed, and a second run is fast.
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from . import manifest
from .cache import Cache
from . import stages
from .config import (METHOD_INPUTS, PEER_RESOLUTION, STREAMS_ROIS, TARGET_ROIS, TRUE_INPUTS, Profile,
                     check_subject)
from .nsd import NSDReader, SubjectData


class _OnFirstUse:
    """A module imported when one of its attributes is first read. torch and the model libraries then load only
    when something is computed: a cache hit (``recon status``, ``recon run`` of a cached stage) costs its keys."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


decode, evaluate, features, models, recipes, ridge_streamed, statements = (
    _OnFirstUse(f"recon.{name}")
    for name in ("decode", "evaluate", "features", "models", "recipes", "ridge_streamed", "statements"))

LOW_DIMENSIONAL = {"z", "c", "c_sd2"}  # alpha grids differ, as in the authors' ridge.py
#: targets decoded from betas averaged over each image's trials, as in the authors' code
TRIAL_AVERAGED = {"vgg"}
#: targets whose decoded entry also keeps each column's SD over the training images (``train_std``), read
#: while the decoder has them: +G rescales decoded VGG19 layers to it
TRAINING_SD = {"vgg"}


def decoder_alphas(profile: Profile, target: str) -> tuple[float, ...]:
    """The ridge alphas ``target`` is decoded with: the profile's small grid for z and c (and c_sd2), its large
    grid for the rest, as the authors' ridge.py gives its small grid to c and init_latent alone."""
    return profile.alphas_lowdim if target in LOW_DIMENSIONAL else profile.alphas_highdim


def check_true_inputs(method: str, true) -> tuple[str, ...]:
    """``true`` (names of :data:`TRUE_INPUTS`, or ``"all"`` for :func:`all_true`) checked against ``method``'s
    inputs, in a canonical order."""
    if method not in METHOD_INPUTS:
        raise KeyError(f"unknown method {method!r}; expected one of {', '.join(METHOD_INPUTS)}")
    if isinstance(true, str):
        if true != "all":
            raise ValueError(f"true inputs are a list of names or 'all', got {true!r}")
        return all_true(method)
    true = tuple(true)
    for name in true:
        if name not in TRUE_INPUTS:
            raise ValueError(f"unknown true input {name!r}; expected some of {', '.join(TRUE_INPUTS)}")
        if name.removeprefix("coco ") not in METHOD_INPUTS[method]:
            raise ValueError(f"{method} reads {', '.join(METHOD_INPUTS[method])}; it has no input {name!r} to replace")
    if "caption" in true and "coco caption" in true:
        raise ValueError("one caption replaces the decoded one: 'caption' (BLIP's) or 'coco caption', not both")
    return tuple(name for name in TRUE_INPUTS if name in true)


def all_true(method: str, caption: str = "caption") -> tuple[str, ...]:
    """The oracle run of ``method``: every decoded input replaced (the caption by ``caption``)."""
    return check_true_inputs(method, [caption if name == "caption" else name for name in METHOD_INPUTS[method]])


def is_oracle(method: str, true) -> bool:
    """Whether ``true`` replaces every input of ``method``: its products then do not depend on the subject."""
    return {name.removeprefix("coco ") for name in check_true_inputs(method, true)} == set(METHOD_INPUTS[method])


def ensure_dataset(profile: Profile, progress: bool = True) -> Path:
    """The profile's NSD root; a profile with a simulation writes its tree on first use.

    Many processes may start at once on an empty cache: the first writes the tree under a lock
    beside it, the others wait and read it. With ``RECON_CACHE_REQUIRE_WARM`` set, a missing tree is
    an error, like any other cache miss."""
    root = profile.nsd_root
    if profile.simulation is not None and not root.exists():
        from filelock import FileLock

        from .cache import REQUIRE_WARM_ENV, ColdCacheError, require_warm_from_env

        if require_warm_from_env():
            raise ColdCacheError(f"cache miss: the simulated NSD {root} does not exist and {REQUIRE_WARM_ENV} is set, "
                                 f"so it is not simulated here; `recon run dataset --profile {profile.name}` writes it")
        with Cache(root.parent).writable():  # a read-only cache: one line, not filelock's traceback
            root.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(root.parent / f".{root.name}.lock"))
            lock.acquire()
        try:
            if not root.exists():
                for leftover in root.parent.glob(f".{root.name}-*"):  # a killed writer's; none lives: the lock is ours
                    shutil.rmtree(leftover, ignore_errors=True)
                profile.simulation.write(root, progress=progress)
        finally:
            lock.release()
    return root


def _model_fingerprint(profile: Profile) -> dict:
    """Model ids, plus each local folder's manifest entry so a rebuilt zoo invalidates the cache."""
    out = {}
    for role, model_id in asdict(profile.models).items():
        path = Path(model_id)
        if role == "vgg19" and model_id == "authors":  # recon.kamitani's network: its input convention keys it too
            out[role] = f"authors, {profile.vgg19_channel_order} channel order"
        elif path.is_dir() and (path.parent / manifest.MANIFEST).is_file():
            entry = manifest.read(path.parent)["models"].get(path.name, {})
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
        self.cache = Cache(profile.cache_dir, compute_threads=profile.compute_threads)
        self.reader = NSDReader(ensure_dataset(profile, progress), profile.trials_per_session)

    # ------------------------------------------------------------------ keys
    @cached_property
    def _dataset_key(self) -> dict:
        # what the files hold, not where they lie: a moved cache or NSD tree stays warm
        files = self.reader.fingerprint(self.subject, self.profile.n_sessions, memo_dir=self.cache.root / "datasets")
        return {"files": files, "n_sessions": self.profile.n_sessions,
                "zscore_betas_per_session": self.profile.zscore_betas_per_session}

    @property
    def dataset_fingerprint(self) -> dict:
        """What the subject's NSD files hold (their content digests) and how they are read: the dataset's part of
        every key, and its digest in :mod:`recon.stage_digests`."""
        return self._dataset_key

    @cached_property
    def _models_key(self) -> dict:
        return _model_fingerprint(self.profile)

    def _settings(self) -> dict:
        p = self.profile
        settings = dict(image_size=p.image_size, vgg=(p.vgg_layers, p.vgg_width_divisor, p.vgg_pool, p.generator_size),
                        seed=p.seed)
        if p.compute_threads is not None:  # the products' arithmetic (recon.threads); nsd's keys stay as they were
            settings["compute_threads"] = p.compute_threads
        return settings

    def _key(self, *extra) -> list:
        return [self._dataset_key, self._models_key, self._settings(), self.subject, *extra]

    @cached_property
    def _stimuli_key(self) -> str:
        """What the test images are, their pixels and captions, hashed once: the key of what is computed from
        them alone, so that every subject who saw the same test images shares it."""
        from .cache import digest

        ids = self.test_ids
        return digest("stimuli", ids, self.test_images, [list(c) for c in self.reader.captions(ids)])

    def _shared_key(self, *extra) -> list:
        """Like :meth:`_key`, for the products of the test images alone (the oracle's): no subject, no betas."""
        return [self._stimuli_key, self._models_key, self._settings(), *extra]

    # ------------------------------------------------------------------ data
    @cached_property
    def data(self) -> SubjectData:
        return self.reader.load_subject(self.subject, STREAMS_ROIS, self.profile.n_sessions,
                                        zscore_per_session=self.profile.zscore_betas_per_session)

    @property
    def test_ids(self) -> np.ndarray:
        """The test images' 73k ids (``data.test_ids``), from the design alone when the betas are not loaded."""
        if "data" in self.__dict__:
            return self.data.test_ids
        if "_design_test_ids" not in self.__dict__:
            trials = self.reader.trials(self.subject, self.profile.n_sessions)
            self._design_test_ids = np.unique(trials["nsd_id"].to_numpy()[trials["shared"].to_numpy()])
        return self._design_test_ids

    @cached_property
    def test_images(self) -> np.ndarray:
        return self.reader.images(self.test_ids)

    @cached_property
    def test_captions(self) -> list[list[str]]:
        return self.reader.captions(self.data.test_ids)

    @cached_property
    def _train_unique(self) -> tuple[np.ndarray, np.ndarray]:
        return np.unique(self.data.train_ids, return_inverse=True)

    @property
    def train_image_ids(self) -> np.ndarray:
        """The distinct training images, in the row order of training features."""
        return self._train_unique[0]

    @property
    def train_image_index(self) -> np.ndarray:
        """For each training trial, its image's row in :attr:`train_image_ids`."""
        return self._train_unique[1]

    # -------------------------------------------------------------- features
    def _extract(self, target: str, ids: np.ndarray, out, dpt_layers=None) -> None:
        """Write the features of ``target`` for images ``ids`` into ``out`` (see features.write_batches)."""
        p = self.profile
        if target in ("c", "c_sd2"):
            pipe = models.img2img(p, "sd" if target == "c" else "sd2")
            features.text_embeddings(pipe, self.reader.captions(ids), progress=self.progress, out=out)
            return
        images = features.LazyImages(self.reader.images, ids)  # read a batch at a time
        if target == "z":
            features.vae_latents(models.img2img(p), images, p.z_size, progress=self.progress, out=out,
                                 sample_ids=ids if p.z_latent == "sample" else None, seed=p.seed)
        elif target == "blip":
            features.blip_vision(*models.blip(p), images, progress=self.progress, out=out, size=p.blip_image_size,
                                 normalise=p.blip_normalise)
        elif target == "dpt":
            features.dpt_hidden_states(*models.dpt(p), images, progress=self.progress, out=out, layers=dpt_layers)
        elif target == "vgg":
            # at the size +G generates, so decoded and generated features share receptive fields
            features.vgg_feature_matrix(models.vgg19_features(p), images, p.vgg_layers, p.vgg_pool, p.generator_size,
                                        progress=self.progress, out=out)
        else:
            raise KeyError(f"unknown decoding target {target!r}; expected one of {list(TARGET_ROIS)}")

    def _creator(self, writer, target: str):
        return lambda shape, dtype: writer.create("x", shape, self.profile.feature_dtype_of(target))

    def stimulus_features(self, target: str, split: str = "test") -> np.ndarray:
        """True features of the test images (cached, one row per image, a memory map).

        Training-image features are not kept: a decoder reads them once (see :meth:`decoded`), and
        at NSD's size they would fill the disk (DPT alone: 42 GB in float16)."""
        if split != "test":
            raise ValueError(f"only test features are kept; got split {split!r} (decoders stream training features)")
        ids = self.test_ids
        return self.cache.get_streamed(*self._entry("features", target),
                                       lambda w: self._extract(target, ids, self._creator(w, target)))["x"]

    def _features_key(self, target: str) -> list:
        return self._key(target, self.test_ids, self.profile.feature_dtype_of(target), self._feature_settings(target))

    def _feature_settings(self, target: str) -> dict:
        """The profile fields that shape one target's features (beyond those of every key)."""
        p = self.profile
        return {"z": {"size": p.z_size, "latent": p.z_latent},
                "blip": {"size": p.blip_image_size, "normalise": p.blip_normalise}}.get(target, {})

    # --------------------------------------------------------------- decoding
    def _decoder_inputs(self, target: str, columns) -> tuple[np.ndarray, np.ndarray | None]:
        """Training betas and the image of each row: per trial, or averaged per image where the authors did."""
        X = self.data.train_betas[:, columns]
        if target in TRIAL_AVERAGED:
            return ridge_streamed.image_means(X, self.train_image_index, len(self.train_image_ids)), None
        return X, self.train_image_index

    def decoded(self, target: str) -> dict[str, np.ndarray]:
        """Decoded test features of ``target``, with the decoder's chosen alphas and test accuracy.

        Streamed (:class:`~recon.ridge_streamed.StreamedRidgeCV`): training features go to a scratch
        entry, targets are fitted in column blocks and predictions written straight to the cache.
        DPT is decoded one layer at a time, as the authors did."""
        p = self.profile
        rois = TARGET_ROIS[target]
        alphas = decoder_alphas(p, target)

        def fit(writer):
            truth = self.stimulus_features(target, "test")
            columns = self.data.columns(rois)
            X, index = self._decoder_inputs(target, columns)
            X_test = self.data.test_betas[:, columns]
            predicted = writer.create("predicted", truth.shape, p.feature_dtype_of(target))
            chosen = writer.create("alphas", (int(np.prod(truth.shape[1:])),), np.float32)
            decoder = ridge_streamed.StreamedRidgeCV(alphas=alphas, cv=p.cv_folds, device=p.device,
                                                     block_size=p.ridge_block_size, progress=self.progress,
                                                     fit_intercept=p.decoder_intercept, dtype=p.decoder_dtype)

            def training_targets():  # each layer's training features live in a scratch entry while it is fitted
                for layer in range(truth.shape[1]) if target == "dpt" else [None]:
                    layers = None if layer is None else [layer]
                    with self.cache.scratch(lambda w: self._extract(target, self.train_image_ids,
                                                                    self._creator(w, target), dpt_layers=layers)) as train:
                        yield layer, train["x"] if layer is None else train["x"][:, 0]

            def keep_training_sd(layer, Y):
                if target in TRAINING_SD:
                    writer.put("train_std", decode.column_std(Y).astype(np.float32))

            chosen[:] = recipes.ridge_decode(decoder, X, index, X_test, training_targets(), predicted,
                                             on_target=keep_training_sd)
            predicted.flush()
            writer.put("test_r", decode.column_correlations(truth, predicted))

        return self.cache.get_streamed(*self._entry("decoded", target), fit)

    def _decoded_key(self, target: str) -> list:
        p = self.profile
        rois = TARGET_ROIS[target]
        alphas = decoder_alphas(p, target)
        return self._key("decoded", target, rois, alphas, p.cv_folds, p.feature_dtype_of(target), sorted(TRIAL_AVERAGED),
                         self._feature_settings(target), {"intercept": p.decoder_intercept},
                         target in TRAINING_SD, *self._decoder_arithmetic())

    def _decoder_arithmetic(self) -> tuple:
        """The decoders' dtype where it is not float32 (so the keys of float32 decoders stay as they were)."""
        dtype = self.profile.decoder_dtype
        return () if dtype == "float32" else ({"decoder dtype": dtype},)

    # ------------------------------------------------------- decoded products
    @cached_property
    def decoded_captions(self) -> list[str]:
        return self._captions("captions", lambda: self.decoded("blip")["predicted"])

    def _captions_key(self) -> list:
        return self._key("captions", *self._caption_settings(), self._decoded_key("blip"))

    def _caption_settings(self) -> tuple:
        p = self.profile
        return p.repetition_penalty, p.caption_beams, p.caption_max_length, p.caption_min_length, p.caption_prompt

    def _captions(self, stage: str, vision_features) -> list[str]:
        """Captions BLIP's text decoder writes from ``vision_features()`` (decoded or true ViT tokens), cached."""
        def run():
            return {"captions": np.array(recipes.captions(self.profile, vision_features(), progress=self.progress))}

        return [str(c) for c in self._cached(stage, (), run)["captions"]]

    @cached_property
    def decoded_depth(self) -> np.ndarray:
        return self._depth("depth", lambda: self.decoded("dpt")["predicted"])

    def _depth_key(self) -> list:
        return self._key("depth", self._decoded_key("dpt"))

    def _depth(self, stage: str, hidden_states) -> np.ndarray:
        """Depth maps DPT's neck and head make of ``hidden_states()`` (decoded or true), cached."""
        def run():
            return {"depth": recipes.depth(self.profile, hidden_states(), progress=self.progress)}

        return self._cached(stage, (), run)["depth"]

    @cached_property
    def gan_images(self) -> np.ndarray:
        """+G images at the generation size, from decoded VGG19 features."""
        return self._gan("gan", lambda: self.decoded("vgg")["predicted"],
                         rescale=self.profile.generator_rescale_features)

    def _gan_key(self) -> list:
        return self._key("gan", *self._gan_settings(), self._decoded_key("vgg"))

    def _gan_settings(self) -> tuple:
        p = self.profile
        recipe = (p.generator_optimiser, p.generator_lr_end, p.generator_momentum, p.generator_decay,
                  p.generator_contrast_pct, p.generator_rescale_features)
        return (p.generator, p.generator_batch_size, p.generator_size, p.generator_steps, p.generator_lr,
                p.generator_dtype, p.generator_code_quantum, recipe)

    def _gan(self, stage: str, vgg_matrix, rescale: bool) -> np.ndarray:
        """+G images matching the VGG19 features ``vgg_matrix()`` (decoded or true, one row per image), cached."""
        def run():
            matrix = vgg_matrix()
            reference = self.vgg_reference_std() if rescale else None
            return {"images": recipes.gan_images(self.profile, matrix, reference, progress=self.progress)}

        return self._cached(stage, (), run)["images"]

    # ----------------------------------------------------- true inputs (oracle)
    def _true_features_key(self, target: str) -> list:
        return self._shared_key("features", target, self.profile.feature_dtype_of(target), self._feature_settings(target))

    @cached_property
    def true_captions(self) -> list[str]:
        """The captions BLIP writes for the seen images themselves, from their true ViT tokens: what a perfect
        decoder of BLIP's features would give +T. Shared by every subject who saw these test images."""
        return self._captions("true_captions", lambda: self.stimulus_features("blip"))

    def _true_captions_key(self) -> list:
        return self._shared_key("true captions", *self._caption_settings(), self._true_features_key("blip"))

    @cached_property
    def coco_captions(self) -> list[str]:
        """Each test image's first COCO caption: a caption of the image written by a person, beside BLIP's."""
        return [captions[0] for captions in self.reader.captions(self.test_ids)]

    @cached_property
    def true_depth(self) -> np.ndarray:
        """DPT's depth maps of the seen images (from their true hidden states), for the oracle's +D."""
        return self._depth("true_depth", lambda: self.stimulus_features("dpt"))

    def _true_depth_key(self) -> list:
        return self._shared_key("true depth", self._true_features_key("dpt"))

    @cached_property
    def true_gan_images(self) -> np.ndarray:
        """+G images optimised on the seen images' true VGG19 features. They are not rescaled: the rescaling
        undoes a decoder's shrinkage, and true features have none."""
        return self._gan("true_gan", lambda: self.stimulus_features("vgg"), rescale=False)

    def _true_gan_key(self) -> list:
        return self._shared_key("true gan", *self._gan_settings(), self._true_features_key("vgg"))

    @cached_property
    def text_to_image(self) -> dict[str, np.ndarray]:
        """SD 1.4's own text-to-image output from each seen image's caption (BLIP's of the seen image, the caption
        +T's oracle gets), with no z and no image: the reference of section 2.1's "blurred compared with the
        realistic images that Stable Diffusion would normally output". Scored as it is made, like a run on true
        inputs: the entry keeps each image's sharpness (:func:`recon.statements.sharpness_per_image`, its
        generations' high-frequency share averaged) and its first generation. Shared by every subject who saw the
        test images."""
        def run():
            images = recipes.text_to_image(self.profile, self.true_captions, progress=self.progress)
            return {"sharpness": statements.sharpness_per_image(images),
                    "first generation": np.ascontiguousarray(images[:, 0])}

        return self._cached("text2img", (), run)

    def _text2img_key(self) -> list:
        return self._shared_key("text to image", self.profile.generation_key | {"progress": None},
                                self._true_captions_key(), ["sharpness", statements.SHARPNESS_CUTOFF])

    def vgg_reference_std(self) -> dict[str, float]:
        """Each VGG19 layer's SD over the subject's training images (per unit, ddof 1), averaged over units: the
        reference +G rescales decoded layers to (the authors' is ImageNet's, from 10,000 images). The per-unit
        SDs are kept by the VGG19 decoder, which reads those features anyway. With the authors' VGG19
        (``models.vgg19`` "authors"), theirs: the mean of feat_std0 per layer, from the cookbook's file."""
        p = self.profile
        if p.models.vgg19 == models.AUTHORS:
            return models.authors_feature_std(p, p.vgg_layers)
        widths = features.vgg_layer_widths(models.vgg19_features(p), p.vgg_layers, p.vgg_pool, p.generator_size)
        per_layer = features.split_vgg_matrix(self.decoded("vgg")["train_std"][None], widths)
        return {layer: float(sd.mean()) for layer, sd in per_layer.items()}

    # --------------------------------------------------------- reconstruction
    def reconstruct(self, method: str, variant: str = "sd") -> np.ndarray:
        """(n_test, n_samples, H, W, 3) uint8 reconstructions for one of the paper's methods."""
        check_true_inputs(method, ())
        return self._cached("reconstruct", (method, variant),
                            lambda: {"images": self._generate(method, variant, ())})["images"]

    def _generate(self, method: str, variant: str, true: tuple[str, ...]) -> np.ndarray:
        """One run's generations (n_test, n_samples, H, W, 3), on decoded inputs but those named in ``true``."""
        c_target = "c" if variant == "sd" else "c_sd2"
        inputs = {  # each read only if the method uses it
            "z": lambda: self.stimulus_features("z") if "z" in true else self.decoded("z")["predicted"],
            "c": lambda: self.stimulus_features(c_target) if "c" in true else self.decoded(c_target)["predicted"],
            "caption": lambda: self._prompts(true),
            "gan": lambda: self.true_gan_images if "gan" in true else self.gan_images,
            "depth": lambda: self.true_depth if "depth" in true else self.decoded_depth,
        }
        return recipes.reconstruct(self.profile, method, variant, inputs, progress=self.progress)

    def _prompts(self, true: tuple[str, ...]) -> list[str]:
        if "coco caption" in true:
            return self.coco_captions
        return self.true_captions if "caption" in true else self.decoded_captions

    def _reconstruct_key(self, method: str, variant: str) -> list:
        return self._key("reconstruct", method, variant, self.profile.generation_key | {"progress": None},
                         self._inputs_key(method, variant))

    # ------------------------------------------------------------ runs on true inputs
    def true_run(self, method: str, variant: str = "sd", true="all") -> dict[str, np.ndarray]:
        """One run with the decoded inputs named in ``true`` replaced by the seen images' own (:data:`TRUE_INPUTS`;
        ``"all"``: the oracle run, :func:`all_true`; one name: a swap), with the decoded run's seeds and samples.

        Its generations are scored as they are made and not kept but for the first of each image (``first
        generation``): on NSD a run's five generations take 3.9 GB, and the oracle and swaps are 17 runs. The entry
        holds the identification's R matrices (as :meth:`identification`), the peers' pixel metrics (as
        :meth:`pixel_metrics`) and those first generations. An oracle run's entry is keyed by the test images
        alone, so every subject who saw them reads the same one."""
        true = check_true_inputs(method, true)
        if not true:
            raise ValueError(f"a run on true inputs needs at least one of {', '.join(METHOD_INPUTS[method])}")

        def run():
            images = self._generate(method, variant, true)
            # the pixel metrics of the first generations read as the decoded runs' do (a view: numpy's sums follow
            # the memory layout, so a contiguous copy would move their last bit)
            pixels = evaluate.pixel_metrics(self.test_images, images[:, 0], PEER_RESOLUTION)
            return self._identify(images, method) | {"first generation": np.ascontiguousarray(images[:, 0])} | pixels

        return self._cached("oracle" if is_oracle(method, true) else "swap", (method, variant, true), run)

    def _true_run_key(self, method: str, variant: str, true) -> list:
        """A swap's key holds the subject; an oracle run's only the test images (:meth:`_shared_key`)."""
        p = self.profile
        true = check_true_inputs(method, true)
        key = self._shared_key if is_oracle(method, true) else self._key
        return key("true run", method, variant, p.generation_key | {"progress": None},
                   self._inputs_key(method, variant, true), ["identification", p.eval_resolution, p.clip_eval_layers],
                   ["pixel metrics", PEER_RESOLUTION])

    def first_generations(self, method: str, variant: str = "sd", true=()) -> np.ndarray:
        """(n_test, H, W, 3): each test image's first generation, of the decoded run or of a run on true inputs."""
        if check_true_inputs(method, true):
            return self.true_run(method, variant, true)["first generation"]
        return self.reconstruct(method, variant)[:, 0]

    def _inputs_key(self, method: str, variant: str, true: tuple[str, ...] = ()) -> list:
        """The keys of what a reconstruction reads, so that it is computed again when one of them changes
        (a +G setting, the decoders' alphas...), as :meth:`reconstruct` dispatches."""
        c_target = "c" if variant == "sd" else "c_sd2"
        if method in ("+T+G", "+T+G+D"):
            start = [self._true_gan_key() if "gan" in true else self._gan_key()]
        else:
            start = [self._true_features_key("z") if "z" in true else self._decoded_key("z"), self.profile.z_init]
        if method == "[30]":
            text = [self._true_features_key(c_target) if "c" in true else self._decoded_key(c_target)]
        elif "coco caption" in true:
            text = [self._shared_key("coco captions", self.coco_captions)]
        else:
            text = [self._true_captions_key() if "caption" in true else self._captions_key()]
        depth = [self._true_depth_key() if "depth" in true else self._depth_key()] if method == "+T+G+D" else []
        return start + text + depth

    # ------------------------------------------------------------- evaluation
    @cached_property
    def _evaluator(self) -> evaluate.EvaluationFeatures:
        return evaluate.EvaluationFeatures(self.profile)

    def evaluation_features(self, images: np.ndarray, label: str) -> dict[str, np.ndarray]:
        """Table 1 features of images (n, H, W, 3), e.g. the originals (label ``original``), cached.

        The cache key holds the images' bytes, so any change upstream recomputes."""
        return self._cached("evaluation", (images, label), lambda: self._evaluator(images, progress=self.progress))

    def _evaluation_key(self, images: np.ndarray | None = None, label: str = "original") -> list:
        """The key of Table 1 features of ``images`` (by default the presented test images, ``original``)."""
        images = self.test_images if images is None else images
        return self._key("evaluation", label, images, self.profile.eval_resolution, self.profile.clip_eval_layers)

    def original_features(self) -> dict[str, np.ndarray]:
        """Table 1 features of the presented test images, shared by every method's identification."""
        return self.evaluation_features(self.test_images, "original")

    def identification(self, method: str, variant: str = "sd", true=()) -> dict[str, np.ndarray]:
        """R matrices of one method per metric: ``mean <metric>`` (over samples) and ``first <metric>``; with
        ``true``, those of a run on true inputs (:meth:`true_run`)."""
        if check_true_inputs(method, true):
            return self.true_run(method, variant, true)
        return self._cached("identification", (method, variant),
                            lambda: self._identify(self.reconstruct(method, variant), method))

    def _identify(self, images: np.ndarray, method: str) -> dict[str, np.ndarray]:
        """R matrices of generations (n, n_samples, H, W, 3) against the originals. They are scored a batch at a
        time and their features dropped: at NSD's size they would take 11 GB per method (CLIP Early / Middle:
        263,168 values per image)."""
        p = self.profile
        original = self.original_features()
        n, n_samples = images.shape[:2]
        out = {f"{kind} {m}": np.zeros((n, n), np.float32) for kind in ("mean", "first") for m in evaluate.METRICS}
        per_batch = max(1, p.batch_size * 4 // n_samples)
        for rows in features.batches(n, per_batch, f"identification {method}", self.progress):
            block = np.asarray(images[rows])
            generated = self._evaluator(block.reshape(-1, *block.shape[2:]), progress=False)
            for metric, values in generated.items():
                values = values.reshape(len(block), n_samples, -1)
                out[f"mean {metric}"][:, rows] = evaluate.cross_correlations(original[metric], values, p.device)
                out[f"first {metric}"][:, rows] = evaluate.cross_correlations(original[metric], values[:, :1],
                                                                               p.device)
        return out

    def _identification_key(self, method: str, variant: str) -> list:
        p = self.profile
        return self._reconstruct_key(method, variant) + ["identification", p.eval_resolution, p.clip_eval_layers]

    # -------------------------------------------------------- where things live
    def entry_path(self, folder: str, *args) -> Path:
        """The cache folder of one product, without computing it: ``entry_path("decoded", "z")``,
        ``entry_path("reconstruct", "+T", "sd")``, ``entry_path("evaluation")`` (the originals')."""
        return self.cache.key_path(*self._entry(folder, *args))

    def _entry(self, folder: str, *args) -> tuple[str, list]:
        """A product's cache folder and key, as the one table of products (:data:`recon.stages.CACHE_KEYS`) says:
        each folder is named after the stage that fills it, and the experiment's method named there gives the key."""
        return folder, getattr(self, stages.cache_key_method(folder))(*args)

    def _cached(self, folder: str, args: tuple, compute) -> dict[str, np.ndarray]:
        return self.cache.get(*self._entry(folder, *args), compute)

    def per_image_scores(self, method: str, variant: str = "sd", exclude_ids=None,
                         protocol: str = "takagi", true=()) -> dict[str, np.ndarray]:
        """Each test image's two-way identification accuracy per Table 1 metric (the claims' unit).

        With ``exclude_ids`` the excluded images leave both the anchors and the comparisons, and
        the arrays hold one value per remaining image, in test order."""
        R = self.identification(method, variant, true)
        keep = None
        if exclude_ids is not None:
            keep = ~np.isin(self.data.test_ids, np.asarray(exclude_ids))
        return evaluate.per_image_scores_from_correlations({m: R[f"mean {m}"] for m in evaluate.METRICS},
                                                           {m: R[f"first {m}"] for m in evaluate.METRICS},
                                                           keep, protocol)

    def scores(self, method: str, variant: str = "sd", exclude_ids=None, protocol: str = "takagi",
               true=()) -> dict[str, float]:
        """Two-way identification of one method for every Table 1 metric (Takagi protocol by default); ``true``:
        the decoded inputs replaced by true ones, as in :meth:`reconstruct`."""
        per_image = self.per_image_scores(method, variant, exclude_ids, protocol, true)
        return {metric: float(values.mean()) for metric, values in per_image.items()}

    def image_scores(self, images: np.ndarray, label: str) -> dict[str, float]:
        """Two-way identification (Takagi protocol) of one image per test image, in test order, for every Table 1
        metric: what an intermediate such as the +G image carries before img2img. ``label`` names the images in
        the evaluation cache."""
        if len(images) != len(self.test_images):
            raise ValueError(f"image_scores: {len(images)} images for {len(self.test_images)} test images")
        generated = {metric: f[:, None] for metric, f in self.evaluation_features(images, label).items()}
        return evaluate.identification_scores(self.original_features(), generated, device=self.profile.device)

    def pixel_metrics(self, method: str, variant: str = "sd", true=()) -> dict[str, np.ndarray]:
        """The peers' PixCorr and SSIM (MindEye's definitions) per test image, first generation."""
        if check_true_inputs(method, true):
            entry = self.true_run(method, variant, true)
            return {name: entry[name] for name in evaluate.PIXEL_METRICS}

        def run():
            first = self.reconstruct(method, variant)[:, 0]  # a view: a memmap stays on disk
            return evaluate.pixel_metrics(self.test_images, first, PEER_RESOLUTION)

        return self._cached("pixel_metrics", (method, variant), run)

    def _pixel_metrics_key(self, method: str, variant: str) -> list:
        return self._reconstruct_key(method, variant) + ["pixel metrics", PEER_RESOLUTION]

    def decoding_summary(self) -> pd.DataFrame:
        rows = []
        for target in ("z", "c", "blip", "dpt", "vgg"):
            d = self.decoded(target)
            rows.append({"target": target, "rois": ", ".join(TARGET_ROIS[target]), "dims": d["test_r"].size,
                         "mean test r": float(d["test_r"].mean()), "median alpha": float(np.median(d["alphas"]))})
        return pd.DataFrame(rows).set_index("target")
