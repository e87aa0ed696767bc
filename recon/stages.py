"""The stages of one subject's analysis: the one list that ``recon run``, ``recon status`` and the
Snakemake workflow (``workflow/Snakefile``) all read, so they cannot drift apart.

A :class:`Job` is one stage for one subject (and decoding target, or reconstruction run): what
``recon run`` computes into the cache and what a Snakemake rule instance stands for. :func:`needs`
gives a job's direct inputs, :func:`jobs` the whole graph, :func:`resources` what a job asks of a
cluster node. Importing this module is cheap (no torch): the Snakefile reads it to plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import METHODS, SUBJECTS, ConfigError, check_subject

#: decoding targets (``recon.experiment.TARGET_ROIS``; a test keeps the two equal)
TARGETS = ("z", "c", "c_sd2", "blip", "dpt", "vgg")
#: the reconstruction runs of Table 1 and the control analysis: (method, model variant)
RUNS = (("[30]", "sd"), ("+T", "sd"), ("+T+G", "sd"), ("+T+G+D", "sd"), ("[30]", "sd2"))
VARIANTS = ("sd", "sd2")
#: file-name-safe names of the methods, for markers and Snakemake wildcards
METHOD_SLUGS = {"[30]": "30", "+T": "T", "+T+G": "TG", "+T+G+D": "TGD"}


@dataclass(frozen=True)
class Stage:
    name: str
    part: str | None  # None, "target" (one job per decoding target) or "run" (per method and variant)
    cache_stage: str | None  # the cache folder its entries live in
    help: str
    per_subject: bool = True
    also_writes: tuple[str, ...] = ()  # further cache folders its job fills, keyed like its own


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("dataset", None, None, "the NSD tree: checked (nsd) or simulated (toy, smoke); once per profile",
          per_subject=False),
    Stage("features", "target", "features", "true features of the test images for one decoding target"),
    Stage("decoded", "target", "decoded", "ridge decoder of one target (training features in scratch) and its "
                                          "test predictions"),
    Stage("captions", None, "captions", "captions generated from decoded BLIP features (+T)"),
    Stage("depth", None, "depth", "depth maps from decoded DPT features (+D)"),
    Stage("gan", None, "gan", "+G images optimised to match decoded VGG19 features"),
    Stage("reconstruct", "run", "reconstructions", "the n_samples reconstructions of every test image, one run"),
    Stage("evaluation", None, "evaluation", "Table 1 features of the presented test images"),
    Stage("identification", "run", "identification", "two-way identification correlations of one run "
                                                     "(and the peers' PixCorr and SSIM)", also_writes=("pixel_metrics",)),
)}


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

    def __post_init__(self):
        check_job(self)

    @property
    def part(self) -> str | None:
        """``z`` for a target, ``TG-sd`` for a run, None otherwise."""
        if self.target is not None:
            return self.target
        if self.method is not None:
            return f"{METHOD_SLUGS[self.method]}-{self.variant}"
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
        return args

    @classmethod
    def from_marker_wildcards(cls, stage: str, subject: str | None = None, part: str | None = None) -> "Job":
        """The job of a Snakemake rule instance: ``decoded`` + ``subj01`` + ``z``, or ``+T+G`` as ``TG-sd``."""
        if STAGES[stage].part == "target":
            return cls(stage, subject, target=part)
        if STAGES[stage].part == "run":
            slug, _, variant = (part or "").partition("-")
            return cls(stage, subject, method=method_from_slug(slug), variant=variant)
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


# ----------------------------------------------------------------------------- the graph
#: what each reconstruction run is made from, besides the models (as in Experiment.reconstruct)
_RUN_INPUTS = {
    ("[30]", "sd"): [("decoded", "z"), ("decoded", "c")],
    ("[30]", "sd2"): [("decoded", "z"), ("decoded", "c_sd2")],
    ("+T", "sd"): [("decoded", "z"), ("captions", None)],
    ("+T+G", "sd"): [("gan", None), ("captions", None)],
    ("+T+G+D", "sd"): [("gan", None), ("depth", None), ("captions", None)],
}


def needs(job: Job, generator: str = "pixels") -> list[Job]:
    """The jobs whose entries ``job`` reads directly (``generator`` is the profile's +G generator)."""
    s = job.subject
    if job.stage == "dataset":
        return []
    if job.stage in ("features", "evaluation"):
        return [Job("dataset")]
    if job.stage == "decoded":
        return [Job("features", s, target=job.target)]
    if job.stage == "captions":
        return [Job("decoded", s, target="blip")]
    if job.stage == "depth":
        return [Job("decoded", s, target="dpt")]
    if job.stage == "gan":
        # the "vae" generator optimises a latent of the shape of the test images' z features
        return [Job("decoded", s, target="vgg")] + ([Job("features", s, target="z")] if generator == "vae" else [])
    if job.stage == "reconstruct":
        return [Job(stage, s, target=target) for stage, target in _RUN_INPUTS[job.method, job.variant]]
    if job.stage == "identification":
        return [Job("reconstruct", s, method=job.method, variant=job.variant), Job("evaluation", s)]
    raise AssertionError(job)


def subject_jobs(subject: str, runs=RUNS) -> list[Job]:
    """Every job of one subject, in an order that respects :func:`needs`."""
    out = [Job("features", subject, target=t) for t in TARGETS]
    out += [Job("decoded", subject, target=t) for t in TARGETS]
    out += [Job("captions", subject), Job("depth", subject), Job("gan", subject), Job("evaluation", subject)]
    out += [Job("reconstruct", subject, method=m, variant=v) for m, v in runs]
    out += [Job("identification", subject, method=m, variant=v) for m, v in runs]
    return out


def jobs(subjects=SUBJECTS, runs=RUNS) -> list[Job]:
    """The whole graph for ``subjects``: the dataset, then every subject's jobs."""
    return [Job("dataset")] + [job for s in subjects for job in subject_jobs(check_subject(s), runs)]


# ------------------------------------------------------------------------- resources
#: What one job of each stage asks of a cluster node on the ``nsd`` profile: GPUs, host memory (MB),
#: wall time (minutes), CPUs. From the budget of ``benchmarks/nsd_scale.py`` (book page "Running on
#: the real NSD"): host and GPU memory per stage, with headroom for the models' weights, and GPU time
#: at an assumed sustained rate, with a wide margin for slower cards and reading the data.
#: ``gpu_gb`` is that budget's device memory (for choosing a partition; not sent to SLURM).
NSD_RESOURCES = {
    "dataset": dict(gpu=0, mem_mb=4_000, runtime=10, cpus=1, gpu_gb=0),
    "features": dict(gpu=1, mem_mb=32_000, runtime=60, cpus=4, gpu_gb=8),  # SD / BLIP / DPT / VGG weights
    "decoded": dict(gpu=1, mem_mb=48_000, runtime=180, cpus=8, gpu_gb=16),  # 14.5 GB host, 12.9 GB GPU; DPT 4 layers
    "captions": dict(gpu=1, mem_mb=16_000, runtime=60, cpus=4, gpu_gb=4),
    "depth": dict(gpu=1, mem_mb=16_000, runtime=30, cpus=4, gpu_gb=4),
    "gan": dict(gpu=1, mem_mb=16_000, runtime=60, cpus=4, gpu_gb=4),  # 5.3 GB host, 3.0 GB GPU
    "reconstruct": dict(gpu=1, mem_mb=32_000, runtime=240, cpus=4, gpu_gb=12),  # 5.9 / 11.0 GB; ~26 GPU-min a run
    "evaluation": dict(gpu=1, mem_mb=16_000, runtime=30, cpus=4, gpu_gb=8),
    "identification": dict(gpu=1, mem_mb=32_000, runtime=60, cpus=4, gpu_gb=8),  # 6.2 / 6.2 GB
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
    if stage.cache_stage is None:
        return exp.profile.nsd_root
    args = (job.target,) if stage.part == "target" else (job.method, job.variant) if stage.part == "run" else ()
    return exp.entry_path(stage.cache_stage, *args)


def entry_paths(exp, job: Job) -> list[Path]:
    """Every cache folder ``job`` fills: :func:`entry_path` first, then its stage's ``also_writes``."""
    stage = STAGES[job.stage]
    extra = [exp.entry_path(name, job.method, job.variant) if stage.part == "run" else exp.entry_path(name)
             for name in stage.also_writes]
    return [entry_path(exp, job), *extra]


def compute(exp, job: Job) -> Path:
    """Compute ``job`` into the cache of ``exp`` (reading what is there already) and return its folder."""
    if job.stage == "dataset":
        raise ValueError("the dataset stage is computed by recon.experiment.ensure_dataset, without a subject")
    if job.subject != exp.subject:
        raise ValueError(f"job {job} is not for the experiment's subject {exp.subject}")
    run = {
        "features": lambda: exp.stimulus_features(job.target, "test"),
        "decoded": lambda: exp.decoded(job.target),
        "captions": lambda: exp.decoded_captions,
        "depth": lambda: exp.decoded_depth,
        "gan": lambda: exp.gan_images,
        "reconstruct": lambda: exp.reconstruct(job.method, job.variant),
        "evaluation": lambda: exp.original_features(),
        # the peers' PixCorr and SSIM ride along: cheap, and read from the same reconstructions
        "identification": lambda: (exp.identification(job.method, job.variant),
                                   exp.pixel_metrics(job.method, job.variant)),
    }[job.stage]
    run()
    return entry_path(exp, job)
