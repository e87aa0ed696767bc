"""The stages of one subject's analysis: the one table of products (:data:`STAGES`) that ``Experiment`` (each
product's cache folder and key), ``recon run``, ``recon status`` and the Snakemake workflow
(``workflow/Snakefile``) all read, so they cannot drift apart. Each stage names its product, its cache folder
(the stage's own name), the experiment method that keys it, what computes it and what it needs; the recipes
themselves are :mod:`recon.recipes`, which the dry run calls too.

A :class:`Job` is one stage for one subject (and decoding target, or reconstruction run): what
``recon run`` computes into the cache and what a Snakemake rule instance stands for. :func:`needs`
gives a job's direct inputs, :func:`jobs` the whole graph, :func:`resources` what a job asks of a
cluster node. Importing this module is cheap (no torch): the Snakefile reads it to plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import METHOD_INPUTS, METHODS, SUBJECTS, TARGET_ROIS, TRUE_INPUTS, ConfigError, check_subject

#: decoding targets, one decoder each
TARGETS = tuple(TARGET_ROIS)
#: the reconstruction runs of Table 1 and the control analysis: (method, model variant)
RUNS = (("[30]", "sd"), ("+T", "sd"), ("+T+G", "sd"), ("+T+G+D", "sd"), ("[30]", "sd2"))
VARIANTS = ("sd", "sd2")
#: file-name-safe names of the methods, for markers and Snakemake wildcards
METHOD_SLUGS = {"[30]": "30", "+T": "T", "+T+G": "TG", "+T+G+D": "TGD"}
#: the true inputs (:data:`recon.config.TRUE_INPUTS`, in its order) by file-name-safe names; several join with "+"
INPUT_SLUGS = {name: name.replace(" caption", "") for name in TRUE_INPUTS}  # "coco caption" -> "coco"


def canonical_inputs(names) -> tuple[str, ...]:
    """Input names in :data:`recon.config.TRUE_INPUTS`' order, so that one set of true inputs has one name."""
    names = set(names)
    return tuple(name for name in TRUE_INPUTS if name in names)


#: the oracle runs, computed once for all subjects: each run of Table 1 and the control with every decoded input
#: replaced by the seen image's own, the caption by BLIP's caption of the image and, for the methods with a
#: caption, once more by its first COCO caption
ORACLE_RUNS = tuple((m, v, canonical_inputs(METHOD_INPUTS[m])) for m, v in RUNS) + tuple(
    (m, v, canonical_inputs({"coco caption" if i == "caption" else i for i in METHOD_INPUTS[m]}))
    for m, v in RUNS if "caption" in METHOD_INPUTS[m])
#: the swaps, per subject: each method of Table 1 with one decoded input replaced by its true value, the others
#: decoded (the control's SD 2.0 run has its oracle run, not its swaps)
SWAP_RUNS = tuple((m, v, (i,)) for m, v in RUNS if v == "sd" for i in METHOD_INPUTS[m])


def inputs_from_slug(value: str) -> tuple[str, ...]:
    """``gan+caption`` -> ``("caption", "gan")``; an unknown name fails naming the valid ones."""
    by_slug = {slug: name for name, slug in INPUT_SLUGS.items()}
    names = [by_slug.get(part, part if part in INPUT_SLUGS else None) for part in value.split("+")]
    if not value or None in names:
        raise ConfigError(f"unknown true inputs {value!r}; give names joined by '+' from {', '.join(by_slug)}")
    return canonical_inputs(names)


def inputs_slug(names) -> str:
    return "+".join(INPUT_SLUGS[name] for name in canonical_inputs(names))


#: the stages of runs on true inputs, with the true inputs of each of their jobs
TRUE_RUN_STAGES = {"oracle": ORACLE_RUNS, "swap": SWAP_RUNS}


@dataclass(frozen=True)
class Stage:
    """One product of the analysis, declared once; ``Experiment``, ``recon run`` / ``status``, the Snakefile and the
    dry run's recipes (:mod:`recon.recipes`) read it."""

    name: str  # the stage, and the cache folder its entries live in
    part: str | None  # None, "target" (one job per decoding target) or "run" (per method and variant)
    help: str
    #: the :class:`~recon.experiment.Experiment` method that gives an entry's key from the job's part; None: no entry
    key: str | None
    #: (experiment, job) -> the product, computed into the experiment's cache (None: not computed by ``recon run``)
    compute: Callable | None
    #: (job, generator) -> the jobs whose entries it reads directly (``generator``: the profile's +G generator)
    needs: Callable
    per_subject: bool = True
    #: once for all subjects, computed in any subject's experiment from the test images it shares with the others
    shared: bool = False
    also_writes: tuple[tuple[str, str], ...] = ()  # further (cache folder, key method) its job fills, same part

    @property
    def folder(self) -> str | None:
        """The cache folder of its entries: its own name (None for the dataset, which lives outside the cache)."""
        return None if self.key is None else self.name


def method_from_slug(value: str) -> str:
    """``+T+G`` or its slug ``TG`` -> ``+T+G``; anything else fails naming the valid ones."""
    if value in METHOD_SLUGS:
        return value
    by_slug = {slug: method for method, slug in METHOD_SLUGS.items()}
    if value in by_slug:
        return by_slug[value]
    raise ConfigError(f"unknown method {value!r}; valid methods are {', '.join(METHODS)} "
                      f"(or {', '.join(by_slug)})")


@dataclass(frozen=True, order=True)
class Job:
    """One stage for one subject: what ``recon run`` computes and one Snakemake job stands for."""

    stage: str
    subject: str | None = None
    target: str | None = None
    method: str | None = None
    variant: str | None = None
    true: tuple[str, ...] = ()  # the inputs an oracle or swap run takes from the seen image

    def __post_init__(self):
        object.__setattr__(self, "true", canonical_inputs(self.true))
        check_job(self)

    @property
    def part(self) -> str | None:
        """``z`` for a target, ``TG-sd`` for a run, ``TG-sd-caption+gan`` for a run on true inputs, None otherwise."""
        if self.target is not None:
            return self.target
        if self.method is not None:
            run = f"{METHOD_SLUGS[self.method]}-{self.variant}"
            return f"{run}-{inputs_slug(self.true)}" if self.true else run
        return None

    def __str__(self) -> str:
        return " ".join(x for x in (self.stage, self.part, self.subject) if x)

    def marker(self) -> str:
        """Where the workflow records that this job finished, relative to its marker folder."""
        name = self.stage if self.part is None else f"{self.stage}-{self.part}"
        return f"{name}.done" if self.subject is None else f"{self.subject}/{name}.done"

    def argv(self) -> list[str]:
        """The ``recon run`` arguments that compute this job (profile and cache options not included)."""
        args = ["run", self.stage]
        if self.subject:
            args += ["--subject", self.subject]
        if self.target:
            args += ["--target", self.target]
        if self.method:
            args += ["--method", METHOD_SLUGS[self.method], "--variant", self.variant]
        if self.true:
            args += ["--true", inputs_slug(self.true)]
        return args

    @classmethod
    def from_marker_wildcards(cls, stage: str, subject: str | None = None, part: str | None = None) -> "Job":
        """The job of a Snakemake rule instance: ``decoded`` + ``subj01`` + ``z``, or ``+T+G`` as ``TG-sd``
        (``TG-sd-caption+gan`` on true inputs)."""
        if STAGES[stage].part == "target":
            return cls(stage, subject, target=part)
        if STAGES[stage].part == "run":
            slug, _, rest = (part or "").partition("-")
            variant, _, true = rest.partition("-")
            return cls(stage, subject, method=method_from_slug(slug), variant=variant,
                       true=inputs_from_slug(true) if true else ())
        return cls(stage, subject)


def marker_folder(profile) -> Path:
    """Where the workflow keeps its markers for ``profile``: ``<cache>/workflow/<profile name>``."""
    return Path(profile.cache_dir) / "workflow" / profile.name


def check_job(job: Job) -> None:
    """Fail with a message naming the bad value unless ``job`` is a job of the graph."""
    if job.stage not in STAGES:
        raise ConfigError(f"unknown stage {job.stage!r}; valid stages are {', '.join(STAGES)}")
    stage = STAGES[job.stage]
    if stage.per_subject:
        if job.subject is None:
            raise ConfigError(f"stage {job.stage!r} needs a subject (one of {', '.join(SUBJECTS)})")
        check_subject(job.subject)
    elif job.subject is not None:
        raise ConfigError(f"stage {job.stage!r} is computed once per profile; it takes no subject")
    if stage.part == "target":
        if job.target not in TARGETS:
            raise ConfigError(f"stage {job.stage!r} needs a decoding target, one of {', '.join(TARGETS)}; "
                              f"got {job.target!r}")
    elif job.target is not None:
        raise ConfigError(f"stage {job.stage!r} takes no decoding target (got {job.target!r})")
    if stage.part == "run":
        if (job.method, job.variant) not in RUNS:
            runs = ", ".join(f"{m} {v}" for m, v in RUNS)
            raise ConfigError(f"stage {job.stage!r} needs one of the runs (method variant) {runs}; "
                              f"got {job.method!r} {job.variant!r}")
    elif job.method is not None or job.variant is not None:
        raise ConfigError(f"stage {job.stage!r} takes no method or variant")
    if job.stage in TRUE_RUN_STAGES:
        valid = [true for m, v, true in TRUE_RUN_STAGES[job.stage] if (m, v) == (job.method, job.variant)]
        if not valid:
            raise ConfigError(f"stage {job.stage!r} has no run of {job.method} {job.variant}; its runs are "
                              + ", ".join(sorted({f"{m} {v}" for m, v, _ in TRUE_RUN_STAGES[job.stage]})))
        if job.true not in valid:
            raise ConfigError(f"stage {job.stage!r} of {job.method} {job.variant} takes the true inputs "
                              f"{' or '.join(inputs_slug(t) for t in valid)}; got {inputs_slug(job.true) or 'none'!r}")
    elif job.true:
        raise ConfigError(f"stage {job.stage!r} takes no true inputs (got {inputs_slug(job.true)!r})")


# ----------------------------------------------------------------------------- the graph
def needs(job: Job, generator: str = "pixels", reader: str | None = None) -> list[Job]:
    """The jobs whose entries ``job`` reads directly (``generator`` is the profile's +G generator). A job for all
    subjects runs in one subject's experiment, ``reader``'s, and also reads that subject's test features (and
    evaluation features of the originals); given ``reader``, those jobs are listed too."""
    out = STAGES[job.stage].needs(job, generator)
    if reader is not None and STAGES[job.stage].shared:
        out += _reader_needs(job, reader)
    return out


def _reader_needs(job: Job, subject: str) -> list[Job]:
    features = {"true_captions": ["blip"], "true_depth": ["dpt"], "true_gan": ["vgg"]}.get(job.stage, [])
    features += [_c_target(job.variant) if name == "c" else name for name in job.true if name in ("z", "c")]
    runs = [Job("evaluation", subject)] if job.stage == "oracle" else []
    return [Job("features", subject, target=target) for target in features] + runs


def _after_dataset(job: Job, generator: str) -> list[Job]:
    return [Job("dataset")]


def _decoder_needs(job: Job, generator: str) -> list[Job]:
    return [Job("features", job.subject, target=job.target)]


def _gan_needs(job: Job, generator: str) -> list[Job]:
    # the "vae" generator optimises a latent of the shape of the test images' z features
    vae = [Job("features", job.subject, target="z")] if generator == "vae" else []
    return [Job("decoded", job.subject, target="vgg")] + vae


def _reconstruct_needs(job: Job, generator: str) -> list[Job]:
    return [_decoded_job(name, job.subject, job.variant) for name in METHOD_INPUTS[job.method]]


def _identification_needs(job: Job, generator: str) -> list[Job]:
    return [Job("reconstruct", job.subject, method=job.method, variant=job.variant), Job("evaluation", job.subject)]


def _oracle_needs(job: Job, generator: str) -> list[Job]:
    return [Job("dataset")] + [Job(_TRUE_PRODUCTS[name]) for name in job.true if name in _TRUE_PRODUCTS]


def _swap_needs(job: Job, generator: str) -> list[Job]:
    (name,) = job.true
    replaced = name.removeprefix("coco ")
    decoded = [_decoded_job(i, job.subject, job.variant) for i in METHOD_INPUTS[job.method] if i != replaced]
    true = _true_job(name, job.subject, job.variant)
    return decoded + ([true] if true else []) + [Job("evaluation", job.subject)]


#: the job that computes a true input once for all subjects
_TRUE_PRODUCTS = {"caption": "true_captions", "depth": "true_depth", "gan": "true_gan"}


def _decoded_job(name: str, subject: str, variant: str) -> Job:
    """The job of the decoded product that the input ``name`` of a run is."""
    if name in ("z", "c"):
        return Job("decoded", subject, target="z" if name == "z" else _c_target(variant))
    return Job({"caption": "captions"}.get(name, name), subject)


def _true_job(name: str, subject: str, variant: str) -> Job | None:
    """The job that a true input comes from: the test images' features (z, c), a true product, or none (the COCO
    captions are read)."""
    if name in ("z", "c"):
        return Job("features", subject, target="z" if name == "z" else _c_target(variant))
    return Job(_TRUE_PRODUCTS[name]) if name in _TRUE_PRODUCTS else None


def _c_target(variant: str) -> str:
    return "c" if variant == "sd" else "c_sd2"


def subject_jobs(subject: str, runs=RUNS) -> list[Job]:
    """Every job of one subject, in an order that respects :func:`needs`."""
    out = [Job("features", subject, target=t) for t in TARGETS]
    out += [Job("decoded", subject, target=t) for t in TARGETS]
    out += [Job("captions", subject), Job("depth", subject), Job("gan", subject), Job("evaluation", subject)]
    out += [Job("reconstruct", subject, method=m, variant=v) for m, v in runs]
    out += [Job("identification", subject, method=m, variant=v) for m, v in runs]
    return out


def oracle_jobs() -> list[Job]:
    """The oracle's jobs, once for all subjects: the true inputs that take computing, the text-to-image reference
    (the claims page's ledger), then each oracle run."""
    return [Job(stage) for stage in ("true_captions", "true_depth", "true_gan", "text2img")] + \
        [Job("oracle", method=m, variant=v, true=true) for m, v, true in ORACLE_RUNS]


def swap_jobs(subject: str) -> list[Job]:
    """One subject's swaps: each run with one decoded input replaced by its true value."""
    return [Job("swap", subject, method=m, variant=v, true=true) for m, v, true in SWAP_RUNS]


def jobs(subjects=SUBJECTS, runs=RUNS, oracle: bool = True) -> list[Job]:
    """The whole graph for ``subjects``: the dataset, every subject's jobs, and (``oracle``) the oracle runs and the
    first subject's swaps."""
    subjects = [check_subject(s) for s in subjects]
    out = [Job("dataset")] + [job for s in subjects for job in subject_jobs(s, runs)]
    return out + (oracle_jobs() + swap_jobs(subjects[0]) if oracle and subjects else [])


# ------------------------------------------------------------------------- resources
#: What one job of each stage asks of a cluster node on the ``nsd`` profile: GPUs, host memory (MB),
#: wall time (minutes), CPUs. From the budget of ``benchmarks/nsd_scale.py`` (book page "Running on
#: the real NSD"): host and GPU memory per stage, with headroom for the models' weights, and GPU time
#: at an assumed sustained rate, with a wide margin for slower cards and reading the data.
#: ``gpu_gb`` is that budget's device memory (for choosing a partition; not sent to SLURM).
NSD_RESOURCES = {
    "dataset": dict(gpu=0, mem_mb=4_000, runtime=10, cpus=1, gpu_gb=0),
    "features": dict(gpu=1, mem_mb=32_000, runtime=60, cpus=4, gpu_gb=8),  # DPT-Large's 3.4 GB the largest
    "decoded": dict(gpu=1, mem_mb=48_000, runtime=180, cpus=8, gpu_gb=16),  # 14.5 GB host, 13.9 GB GPU; DPT 4 layers
    "captions": dict(gpu=1, mem_mb=16_000, runtime=60, cpus=4, gpu_gb=4),
    "depth": dict(gpu=1, mem_mb=16_000, runtime=30, cpus=4, gpu_gb=4),
    "gan": dict(gpu=1, mem_mb=16_000, runtime=60, cpus=4, gpu_gb=8),  # 8.0 GB GPU (the authors' nets, batch 64)
    # 5.9 GB host, 10.1 GB GPU (depth2img in float32); ~26 GPU-min an img2img run, ~131 a depth2img run
    "reconstruct": dict(gpu=1, mem_mb=32_000, runtime=240, cpus=4, gpu_gb=12),
    "evaluation": dict(gpu=1, mem_mb=16_000, runtime=30, cpus=4, gpu_gb=8),
    "identification": dict(gpu=1, mem_mb=32_000, runtime=60, cpus=4, gpu_gb=8),  # 6.2 / 6.2 GB
    # the oracle's: the same work on true inputs (true features are the test images', read or extracted)
    "true_captions": dict(gpu=1, mem_mb=32_000, runtime=60, cpus=4, gpu_gb=8),
    "true_depth": dict(gpu=1, mem_mb=32_000, runtime=60, cpus=4, gpu_gb=8),
    "true_gan": dict(gpu=1, mem_mb=32_000, runtime=90, cpus=4, gpu_gb=8),
    # SD 1.4 from pure noise over all 50 steps: ~1.25 img2img runs of GPU time
    "text2img": dict(gpu=1, mem_mb=32_000, runtime=240, cpus=4, gpu_gb=12),
    "oracle": dict(gpu=1, mem_mb=32_000, runtime=300, cpus=4, gpu_gb=12),  # a run and its identification
    "swap": dict(gpu=1, mem_mb=32_000, runtime=300, cpus=4, gpu_gb=12),
}
#: the simulated profiles run on a laptop or CI runner: no GPU, one thread per job
LOCAL_RESOURCES = dict(gpu=0, mem_mb=4_000, runtime=30, cpus=1, gpu_gb=0)


def resources(stage: str, profile: str) -> dict:
    """Resources of one job of ``stage`` (see :data:`NSD_RESOURCES`); ``cpus`` is the job's thread count."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; valid stages are {', '.join(STAGES)}")
    return dict(NSD_RESOURCES[stage] if profile == "nsd" else LOCAL_RESOURCES)


# --------------------------------------------------------------------------- running
def entry_path(exp, job: Job) -> Path:
    """The cache folder that holds ``job``'s product for the experiment ``exp`` (not computed)."""
    stage = STAGES[job.stage]
    if stage.folder is None:
        return exp.profile.nsd_root
    return exp.entry_path(stage.folder, *_entry_args(job))


def _entry_args(job: Job) -> tuple:
    part = STAGES[job.stage].part
    if part == "run":
        return (job.method, job.variant, job.true) if job.true else (job.method, job.variant)
    return (job.target,) if part == "target" else ()


def entry_paths(exp, job: Job) -> list[Path]:
    """Every cache folder ``job`` fills: :func:`entry_path` first, then its stage's ``also_writes``."""
    stage = STAGES[job.stage]
    extra = [exp.entry_path(folder, *_entry_args(job)) for folder, _ in stage.also_writes]
    return [entry_path(exp, job), *extra]


def compute(exp, job: Job) -> Path:
    """Compute ``job`` into the cache of ``exp`` (reading what is there already) and return its folder."""
    if STAGES[job.stage].compute is None:
        raise ValueError("the dataset stage is computed by recon.experiment.ensure_dataset, without a subject")
    if job.subject is not None and job.subject != exp.subject:  # a job for all subjects runs in any one's
        raise ValueError(f"job {job} is not for the experiment's subject {exp.subject}")
    try:
        STAGES[job.stage].compute(exp, job)
    finally:
        if exp.profile.device != "cpu":  # the next job's models then fit beside nothing else (recon.gpu_budget)
            from . import models

            models.release()
    return entry_path(exp, job)


# ------------------------------------------------------------------ the products
def _run(job: Job) -> tuple:
    return (job.method, job.variant)


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("dataset", None, "the NSD tree: checked (nsd) or simulated (toy, smoke); once per profile",
          key=None, compute=None, needs=lambda job, generator: [], per_subject=False),
    Stage("features", "target", "true features of the test images for one decoding target",
          key="_features_key", compute=lambda exp, job: exp.stimulus_features(job.target, "test"),
          needs=_after_dataset),
    Stage("decoded", "target", "ridge decoder of one target (training features in scratch) and its test predictions",
          key="_decoded_key", compute=lambda exp, job: exp.decoded(job.target), needs=_decoder_needs),
    Stage("captions", None, "captions generated from decoded BLIP features (+T)",
          key="_captions_key", compute=lambda exp, job: exp.decoded_captions,
          needs=lambda job, generator: [Job("decoded", job.subject, target="blip")]),
    Stage("depth", None, "depth maps from decoded DPT features (+D)",
          key="_depth_key", compute=lambda exp, job: exp.decoded_depth,
          needs=lambda job, generator: [Job("decoded", job.subject, target="dpt")]),
    Stage("gan", None, "+G images optimised to match decoded VGG19 features",
          key="_gan_key", compute=lambda exp, job: exp.gan_images, needs=_gan_needs),
    Stage("reconstruct", "run", "the n_samples reconstructions of every test image, one run",
          key="_reconstruct_key", compute=lambda exp, job: exp.reconstruct(*_run(job)), needs=_reconstruct_needs),
    Stage("evaluation", None, "Table 1 features of the presented test images",
          key="_evaluation_key", compute=lambda exp, job: exp.original_features(), needs=_after_dataset),
    # the peers' PixCorr and SSIM ride along: cheap, and read from the same reconstructions
    Stage("identification", "run", "two-way identification correlations of one run (and the peers' PixCorr and SSIM)",
          key="_identification_key",
          compute=lambda exp, job: (exp.identification(*_run(job)), exp.pixel_metrics(*_run(job))),
          needs=_identification_needs, also_writes=(("pixel_metrics", "_pixel_metrics_key"),)),
    # the oracle: the same runs on true inputs, computed from the test images alone, so once for all subjects
    # (their features are read or computed by the job itself)
    Stage("true_captions", None, "captions BLIP writes from the seen images' own features (oracle +T)",
          key="_true_captions_key", compute=lambda exp, job: exp.true_captions, needs=_after_dataset,
          per_subject=False, shared=True),
    Stage("true_depth", None, "depth maps from the seen images' own DPT features (oracle +D)",
          key="_true_depth_key", compute=lambda exp, job: exp.true_depth, needs=_after_dataset,
          per_subject=False, shared=True),
    Stage("true_gan", None, "+G images optimised on the seen images' own VGG19 features (oracle +G)",
          key="_true_gan_key", compute=lambda exp, job: exp.true_gan_images, needs=_after_dataset,
          per_subject=False, shared=True),
    Stage("text2img", None, "SD 1.4's own text-to-image output from the seen images' captions, scored (the "
                            "claims page's reference of a sharp generation)",
          key="_text2img_key", compute=lambda exp, job: exp.text_to_image,
          needs=lambda job, generator: [Job("true_captions")], per_subject=False, shared=True),
    Stage("oracle", "run", "one run with every decoded input replaced by the seen image's own, scored "
                           "(identification, pixel metrics; first generations kept)",
          key="_true_run_key", compute=lambda exp, job: exp.true_run(*_run(job), job.true), needs=_oracle_needs,
          per_subject=False, shared=True),
    Stage("swap", "run", "one run with one decoded input replaced by the seen image's own, scored",
          key="_true_run_key", compute=lambda exp, job: exp.true_run(*_run(job), job.true), needs=_swap_needs),
)}
#: cache folder -> the Experiment method that keys its entries: each stage's own folder, and those it also fills
CACHE_KEYS = {stage.name: stage.key for stage in STAGES.values() if stage.key} | {
    folder: key for stage in STAGES.values() for folder, key in stage.also_writes}


def cache_key_method(folder: str) -> str:
    """The Experiment method that keys the entries of cache ``folder``; an unknown folder fails naming the valid ones."""
    if folder not in CACHE_KEYS:
        raise KeyError(f"unknown cache folder {folder!r}; expected one of {sorted(CACHE_KEYS)}")
    return CACHE_KEYS[folder]
