"""Does one subject of the real NSD fit one 80 GB GPU, 128 GB of host memory and a 64 GB disk?

    python benchmarks/nsd_scale.py                 # about 10 minutes on 2 cores
    python benchmarks/nsd_scale.py --fraction 0.1  # larger measured fractions, slower

Every stage runs the package's own code on random arrays of NSD's real row counts (trials,
images, test images) and a measured fraction of the columns (voxels or targets) that fits this
machine; its peak host memory (anonymous RSS, sampled) and time are measured there. The full-size
figures then come from each stage's memory model (the arrays it holds at once, written out below
and printed beside the measurement, so the model is checked where it can be) and from linear
extrapolation of the time in the number of target columns. GPU memory is the model's device-resident
part; GPU time is arithmetic (FLOPs at a stated sustained rate), not a measurement, unless
``--device cuda`` runs it. Disk is the exact size of the cache entries the ``nsd`` profile keeps,
plus the largest scratch entry alive at once. The NSD tree the subject reads is not on that disk (it lies at
RECON_NSD_ROOT): its size, modelled from NSD's published shapes by recon.nsd_sizes, is reported on a line of its
own, ``dataset: ...``, with whether tree and cache would share one 64 GB disk. The last line reads
``fits: host X/128 GB, gpu Y/80 GB, disk Z/64 GB`` (the cache's disk) or names what does not fit.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recon import evaluate, features, gpu_budget, methods, nsd_sizes, recipes
from recon.cache import Cache
from recon.ridge_streamed import StreamedRidgeCV, memory_bytes

GB = 1e9
BUDGET = {"host": 128, "gpu": 80, "disk": 64}

# ---------------------------------------------------------------- NSD, one subject (subj01)
SUBJECT = "subj01"
N_SESSIONS = 37  # the nsd profile's sessions
N_TRIALS = 24_980  # training trials (37 sessions, shared images removed)
N_IMAGES = 8_859  # distinct training images
N_TEST = 982  # shared images seen in 37 sessions, averaged over repeats
N_STREAMS = 15_700  # streams voxels read by the reader
N_DECODE = 14_000  # the six ROIs of section 2.1; an upper bound for z (early) and c (ventral) too
N_SAMPLES = 5
#: GB of one 512 px uint8 image per test image (a +G image, a run's first generations), and of a run's generations
ONE_IMAGE_EACH_GB = N_TEST * 512 * 512 * 3 / GB
RUN_IMAGES_GB = N_SAMPLES * ONE_IMAGE_EACH_GB


def feature_dtype(target: str) -> np.dtype:
    """The dtype ``target``'s features are stored in on the nsd profile (float32, DPT float16: feature_dtype_of)."""
    from recon.profiles import get_profile

    return np.dtype(get_profile("nsd").feature_dtype_of(target))


def feature_bytes(target: str) -> int:
    return feature_dtype(target).itemsize


def _nsd_targets() -> dict:
    """Decoding targets per image whose size the nsd profile sets: z at its encode size (the VAE downsamples by
    8), BLIP's 1 + (side / 16)^2 tokens at its input size."""
    from recon.profiles import get_profile

    nsd = get_profile("nsd")
    return {"z": (4, nsd.z_size // 8, nsd.z_size // 8), "blip": (1 + (nsd.blip_image_size // 16) ** 2, 768)}


#: decoding targets per image (VGG19: the five conv maps average-pooled to 14 x 14, then fc6, fc7, fc8)
_NSD_TARGETS = _nsd_targets()
TARGETS = {
    "z": _NSD_TARGETS["z"],
    "c": (77, 768),
    "c_sd2": (77, 1024),
    "blip": _NSD_TARGETS["blip"],
    "dpt": (4, 577, 1024),
    "vgg": (196 * (64 + 128 + 256 + 512 + 512) + 4096 + 4096 + 1000,),
}
#: Table 1 feature widths per image at 299 px / CLIP 224 px: CLIP hidden states 257 x 1024, AlexNet
#: features.5 (192 x 17 x 17), features.12 (256 x 8 x 8), classifier.5 (4096), Inception pool (2048)
EVAL_DIMS = {"CLIP(Early)": 263_168, "CLIP(Middle)": 263_168, "CLIP(Late)": 768, "CNN(Early)": 55_488,
             "CNN(Middle)": 16_384, "CNN(Late)": 4_096, "Inception-v3": 2_048}
METHODS_RUN = 5  # [30], +T, +T+G, +T+G+D, and [30] with SD 2.0 for the control analysis
#: sustained rates assumed for GPU arithmetic on one H100 (well below the 989 TFLOP/s dense fp16 peak)
GPU_FP16_FLOPS = 200e12
GPU_FP32_FLOPS = 40e12  # TF32 matmul, sustained
GPU_FP64_EIGH_SECONDS_14K = 40.0  # torch.linalg.eigh of a 14,000^2 float64 matrix (cuSOLVER syevd)


@dataclass
class Row:
    stage: str
    host_gb: float
    gpu_gb: float
    disk_gb: float
    cpu_seconds: float  # measured here, at the measured fraction unless the note says otherwise
    gpu_seconds: float  # arithmetic
    note: str = ""
    first_subject_only: bool = False  # the oracle's and the text-to-image reference: not repeated for other subjects


class PeakAnonymousMemory:
    """Peak anonymous RSS of this process while the block runs (page cache of memory maps excluded:
    it is reclaimable, and counting it would charge every file read to the process)."""

    def __enter__(self):
        self.base = self.peak = self._anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._anon())

    @property
    def used(self) -> float:
        return (self.peak - self.base) / GB

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._anon())

    @staticmethod
    def _anon() -> int:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) * 1024


def random_memmap(path: Path, shape, dtype, seed: int) -> np.ndarray:
    """A memory-mapped array of random values, written in row blocks (never whole in memory)."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    rng = np.random.default_rng(seed)
    rows = max(1, int(64e6 // max(1, np.prod(shape[1:]) * 4)))
    for start in range(0, shape[0], rows):
        block = rng.standard_normal((min(rows, shape[0] - start), *shape[1:]), dtype=np.float32)
        array[start : start + len(block)] = block
    array.flush()
    return np.load(path, mmap_mode="r")


# ---------------------------------------------------------------- the decoder's memory model
def prepared_decoder(args) -> tuple[StreamedRidgeCV, dict]:
    """The voxel side of a decoder (standardise, diagonalise five folds and the whole set), once:
    it does not depend on the targets, which :meth:`StreamedRidgeCV.fit_targets` then adds."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_TRIALS, args.voxels), dtype=np.float32)
    index = rng.integers(0, N_IMAGES, N_TRIALS)
    decoder = StreamedRidgeCV(alphas=(1e4, 2e4, 4e4), cv=5, device=args.device, block_size=4096)
    with PeakAnonymousMemory() as m:
        decoder.fit(X, np.zeros((N_IMAGES, 1), np.float32), index)
    return decoder, {"seconds": m.seconds, "used": m.used + X.nbytes / GB}


def measure_decoder(name: str, q: int, decoder: StreamedRidgeCV, prepared: dict, args, tmp: Path):
    """Fit + predict a fraction of ``q`` target columns, all real row counts, on the prepared voxel side."""
    folds, n_alphas, block = decoder.cv, len(decoder.alphas), decoder.block_size
    p_measured = decoder.n_features_in_
    q_measured = min(q, args.columns)
    X_test = np.random.default_rng(1).standard_normal((N_TEST, p_measured), dtype=np.float32)
    Y = random_memmap(tmp / f"{name}-train.npy", (N_IMAGES, q_measured), feature_dtype(name), 1)
    out = np.lib.format.open_memmap(tmp / f"{name}-pred.npy", mode="w+", dtype=feature_dtype(name),
                                    shape=(N_TEST, q_measured))
    with PeakAnonymousMemory() as m:
        decoder.fit_targets(Y)
        decoder.predict(X_test, out=out)
    model_small = memory_bytes(N_TRIALS, N_IMAGES, N_TEST, p_measured, min(block, q_measured), n_alphas, folds)
    model_full = memory_bytes(N_TRIALS, N_IMAGES, N_TEST, N_DECODE, block, n_alphas, folds)
    measured = prepared["used"] + m.used  # an upper bound: voxel-side peak plus the targets phase
    predicted_small = (model_small["host"] + (model_small["device"] if args.device == "cpu" else 0)) / GB
    cpu = m.seconds  # at the measured size: not extrapolated (the budget is the GPU's)
    n_val = N_TRIALS // folds
    target_flops = 2 * q * (folds * (N_DECODE * N_IMAGES + n_alphas * n_val * N_DECODE) + 2 * N_DECODE * N_IMAGES
                            + N_TEST * N_DECODE)
    prepare_flops = 2 * (folds + 1) * (N_TRIALS * N_DECODE**2 + N_DECODE**2 * N_IMAGES)
    gpu = (folds + 1) * GPU_FP64_EIGH_SECONDS_14K + (target_flops + prepare_flops) / GPU_FP32_FLOPS
    disk = (N_TEST * q * feature_bytes(name) + q * 4) / GB  # predictions and alphas kept
    scratch = N_IMAGES * q * feature_bytes(name) / GB
    host = model_full["host"] / GB + (0 if args.device == "cuda" else model_full["device"] / GB)
    note = (f"measured {q_measured:,} of {q:,} columns from {p_measured:,} voxels: {measured:.2f} GB "
            f"(model {predicted_small:.2f} GB), {m.seconds:.1f} s (voxel side, shared: {prepared['seconds']:.1f} s); "
            f"scratch features {scratch:.1f} GB")
    return Row(f"decode {name}", host, model_full["device"] / GB, disk, cpu, gpu, note), scratch


def measure_feature_stream(name: str, shape, args, tmp: Path) -> tuple[Row, float]:
    """Extraction writes batch by batch into a cache entry: only one batch is in memory."""
    n_measured = max(64, int(N_IMAGES * args.fraction))
    cache = Cache(tmp / "cache")
    batch = 32
    rng = np.random.default_rng(0)
    block = rng.standard_normal((batch, *shape), dtype=np.float32)

    def blocks():
        for start in range(0, n_measured, batch):
            rows = slice(start, min(n_measured, start + batch))
            yield rows, torch.from_numpy(block[: rows.stop - rows.start])

    with PeakAnonymousMemory() as m:
        with cache.scratch(lambda w: features.write_batches(blocks(), n_measured,
                                                            lambda s, d: w.create("x", s, feature_dtype(name)))):
            pass
    per_image = int(np.prod(shape)) * feature_bytes(name)
    train, test = N_IMAGES * per_image / GB, N_TEST * per_image / GB
    host = batch * int(np.prod(shape)) * 4 * 2 / GB  # one float32 batch and its cast
    note = (f"measured {n_measured:,} images: {m.used:.2f} GB beyond one batch, {m.seconds:.1f} s of writing; "
            f"test features kept {test:.2f} GB")
    # GPU arithmetic: a ViT costs ~2 x parameters FLOPs per token; DPT runs once per layer (one layer kept at a time)
    flops = {"blip": 2 * 86e6 * TARGETS["blip"][0], "dpt": 4 * 2 * 304e6 * 577}[name] * (N_IMAGES + N_TEST)
    row = Row(f"features {name} (to disk)", host, host, test, m.seconds * N_IMAGES / n_measured,
              flops / GPU_FP16_FLOPS, note)
    return row, train


def measure_identification(args) -> Row:
    """Table 1 scores as float32 matrix products; one metric at CLIP's 263,168 dims, a fraction of the rows."""
    d = EVAL_DIMS["CLIP(Early)"]
    n = max(200, int(N_TEST * args.fraction))
    rng = np.random.default_rng(0)
    originals = rng.standard_normal((n, d), dtype=np.float32)
    generated = rng.standard_normal((n, N_SAMPLES, d), dtype=np.float32)
    with PeakAnonymousMemory() as m:
        evaluate.correlation_matrix(originals, generated, device=args.device)
    # products scale with n² (rows x generated rows); a full metric at 982 rows:
    cpu = m.seconds * (N_TEST / n) ** 2
    flops = 2 * N_TEST * N_TEST * N_SAMPLES * sum(EVAL_DIMS.values())
    gpu = flops / GPU_FP32_FLOPS * METHODS_RUN
    host = (N_TEST + N_TEST * N_SAMPLES) * d * 4 / GB  # one metric's features of originals and generations
    evaluation_disk = N_TEST * sum(EVAL_DIMS.values()) * 4 / GB  # features of the originals, cached
    note = (f"measured {n} x {n}x{N_SAMPLES} at {d:,} dims: {m.seconds:.1f} s, {m.used:.2f} GB; "
            f"CPU time is for one CLIP metric, GPU time for all metrics of {METHODS_RUN} runs")
    return Row("identification (Table 1)", host, host, evaluation_disk, cpu, gpu, note)


def gan_networks(profile):
    """+G's generator and VGG19 as the profile names them, with random weights: the authors' relu7 generator and
    Caffe VGG19 (recon.kamitani's architectures, the cookbook files' shapes), or the pixel generator and
    torchvision's VGG19."""
    from torchvision.models import vgg19

    from recon import kamitani

    if profile.generator == "authors":
        generator = methods.AuthorsDGNGenerator(kamitani.AlexNetGenerator().eval().requires_grad_(False),
                                                np.full(kamitani.CODE_SIZE, 30.0, np.float32), (104.0, 117.0, 123.0),
                                                profile.vgg19_channel_order, kamitani.VGG19_SIDE)
    else:
        generator = methods.PixelGenerator(profile.generator_size, space="caffe")
    vgg = (kamitani.CaffeVGG19(channel_order=profile.vgg19_channel_order) if profile.models.vgg19 == "authors"
           else vgg19(weights=None)).eval().requires_grad_(False)
    return generator, vgg


def gan_forward_flops(generator, vgg, side: int) -> float:
    """FLOPs of one image's +G forward, counted by torch's FlopCounterMode: the generator from its code (the pixel
    generator has none to count) and VGG19 to fc8 at ``side`` px. (The counter cannot follow the loop's
    torch.autograd.grad, so the backward is not counted but taken as twice the forward.)"""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network = getattr(generator, "network", None)
        if network is not None:
            network(torch.zeros(1, network.defc7.in_features))
        vgg(torch.zeros(1, 3, side, side))
    return float(counter.get_total_flops())


def measure_gan(args) -> Row:
    """+G with the nsd profile's recipe and networks (the authors' relu7 generator and Caffe VGG19, random weights):
    the generator forward, VGG19 forward to fc8 at 224 px, and both backward, per image and step, in float32 (the
    profile's dtype); its FLOPs three times the forward's, counted (:func:`gan_forward_flops`)."""
    from recon.profiles import get_profile

    nsd = get_profile("nsd")
    generator, vgg = gan_networks(nsd)
    steps, batch = nsd.generator_steps, nsd.generator_batch_size
    widths = features.vgg_layer_widths(vgg, nsd.vgg_layers, nsd.vgg_pool, nsd.generator_size)
    targets = {layer: np.ones((2, dims), np.float32) for layer, dims in widths.items()}
    measured_steps = 2
    options = recipes.feature_matching_options(nsd) | dict(steps=measured_steps, batch_size=2, dtype=None)
    with PeakAnonymousMemory() as m:
        methods.images_from_vgg_features(generator, vgg, targets, **options, progress=False)
    flops_per_image_step = 3 * gan_forward_flops(generator, vgg, nsd.generator_size)  # backward ~ twice forward
    per_image_step = m.seconds / (2 * measured_steps)
    cpu = per_image_step * N_TEST * steps
    rate = GPU_FP32_FLOPS if nsd.dtype == "float32" else GPU_FP16_FLOPS
    gpu = flops_per_image_step * N_TEST * steps / rate
    per_image_memory = m.used / 2  # activations kept for backward, float32 here
    gpu_memory = gpu_budget.gan_gb(nsd, batch) + gpu_budget.CUDA_OVERHEAD_GB
    note = (f"measured 2 images x {measured_steps} steps: {m.seconds:.1f} s, {m.used:.2f} GB; "
            f"GPU: {flops_per_image_step / 1e9:.0f} GFLOP per image-step (counted) at {rate / 1e12:.0f} TFLOP/s "
            f"({nsd.dtype}); budget 15 min: {'met' if gpu <= 900 else 'NOT met'}")
    kind = "authors' generator" if nsd.generator == "authors" else nsd.generator
    return Row(f"+G ({kind}, {steps} steps)", per_image_memory * batch, gpu_memory, ONE_IMAGE_EACH_GB,
               cpu, gpu, note)


#: FLOPs of one SD UNet call at 64 x 64 latents: ~0.4 TMAC per image and step
UNET_FLOPS = 2 * 0.4e12


def generation_row(peaks: dict[str, float]) -> Row:
    """img2img / depth2img: 982 x 5 samples, 50 DDIM steps x strength 0.8, classifier-free guidance. GPU memory:
    the largest of the generation stages of recon.gpu_budget (each job's networks and one batch)."""
    steps = int(50 * 0.8)
    # four of the five runs (SD 1.4 and 2.0 img2img) under float16 autocast, +T+G+D's depth2img in float32
    gpu = 2 * UNET_FLOPS * steps * N_TEST * N_SAMPLES * ((METHODS_RUN - 1) / GPU_FP16_FLOPS + 1 / GPU_FP32_FLOPS)
    images = RUN_IMAGES_GB
    stage, peak = max(((s, gb) for s, gb in peaks.items() if "2img" in s), key=lambda item: item[1])
    return Row("generation (5 runs)", images + 2, peak, images * METHODS_RUN, float("nan"), gpu,
               f"{images:.2f} GB of uint8 images per run; GPU: {stage} at its peak (recon.gpu_budget: its networks' "
               f"weights and one batch's measured activations); GPU time at {GPU_FP16_FLOPS / 1e12:.0f} TFLOP/s under "
               f"autocast, {GPU_FP32_FLOPS / 1e12:.0f} in float32 (depth2img)")


def oracle_row(gan: Row, generation: Row) -> Row:
    """The oracle's runs (once for all subjects) and one subject's swaps: each a generation run scored as it is
    made, its five generations held in memory, only the first kept on disk (Experiment.true_run); plus one +G on
    true features. Counted against the one subject that computes them."""
    from recon.stages import ORACLE_RUNS, SWAP_RUNS

    runs = len(ORACLE_RUNS) + len(SWAP_RUNS)
    images, first = RUN_IMAGES_GB, ONE_IMAGE_EACH_GB
    scores = N_TEST * N_TEST * 2 * len(EVAL_DIMS) * 4 / GB  # mean and first R matrices per metric, float32
    gpu = (generation.gpu_seconds / METHODS_RUN) * runs + gan.gpu_seconds
    return Row(f"oracle and swaps ({runs} runs)", images + 2 + 2, generation.gpu_gb, runs * (first + scores),
               float("nan"), gpu, f"{runs} runs: {len(ORACLE_RUNS)} oracle runs for all subjects, {len(SWAP_RUNS)} "
               f"swaps of one subject; per run {first:.2f} GB of first generations and {scores:.2f} GB of R matrices "
               f"kept, its {images:.2f} GB of generations held in memory; plus one +G on true features",
               first_subject_only=True)


def text2img_row(peaks: dict[str, float]) -> Row:
    """The claims page's text-to-image reference (Experiment.text_to_image): SD 1.4 from pure noise, all 50 DDIM
    steps, 982 x 5 samples under float16 autocast, once for all subjects; its generations held in memory while they
    are scored, the first of each image kept."""
    images, first = RUN_IMAGES_GB, ONE_IMAGE_EACH_GB
    gpu = 2 * UNET_FLOPS * 50 * N_TEST * N_SAMPLES / GPU_FP16_FLOPS
    return Row("text-to-image reference", images + 2, peaks["img2img (SD 1.4)"], first, float("nan"), gpu,
               f"one run of {N_TEST * N_SAMPLES:,} generations over 50 steps (img2img's 40), at "
               f"{GPU_FP16_FLOPS / 1e12:.0f} TFLOP/s under autocast; {first:.2f} GB of first generations kept",
               first_subject_only=True)


def ledger_row(peaks: dict[str, float]) -> Row:
    """The claims page's ledger (recon.ledger) for one subject, from the cached products: CNN(Middle) of every
    generation of +T+G and +T+G+D (AlexNet at 299 px, its FLOPs counted), CLIP's text tower on two sets of
    captions, and the sharpness of [30]'s, +T's and the seen images' (one FFT of each 512 px image's luma, measured
    here per image). Host memory: the two methods' CNN(Middle) features held at once (features.12 at 299 px,
    256 x 8 x 8, float32); GPU memory: the evaluation networks' (recon.gpu_budget's evaluation stage)."""
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import alexnet

    from recon import statements

    net = alexnet().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        width = net.features(torch.zeros(1, 3, 299, 299)).numel()
    flops = counter.get_total_flops()
    generations = 2 * N_TEST * N_SAMPLES
    gpu = flops * generations / GPU_FP32_FLOPS
    host = generations * width * 4 / GB  # both methods' features at once
    images = np.random.default_rng(0).integers(0, 256, (4, 512, 512, 3), dtype=np.uint8)
    start = time.perf_counter()
    statements.high_frequency_share(images)
    fft_seconds = (time.perf_counter() - start) / len(images)
    sharpened = (2 * N_SAMPLES + 1) * N_TEST  # [30]'s and +T's generations, the seen images
    return Row("ledger (claims page)", host, peaks["evaluation (CLIP, AlexNet, Inception-v3)"], 0.0,
               fft_seconds * sharpened, gpu,
               f"{generations:,} generations through AlexNet to features.12 ({flops / 1e9:.1f} GFLOP "
               f"each at 299 px), {width:,} values each; {sharpened:,} sharpness FFTs at {fft_seconds * 1e3:.0f} ms "
               f"(CPU); captions' CLIP text embeddings negligible")


def reader_row() -> Row:
    """The reader keeps the output arrays plus one 125-trial chunk of a session volume (see nsd.py)."""
    train = 30_000 * N_STREAMS * 4 / GB  # every trial of 37 sessions before the shared images are split off
    voxels = int(np.prod(nsd_sizes.NSD_GRIDS[SUBJECT]))  # the func1pt8mm grid, (81, 104, 83) for subj01
    chunk = 125 * voxels * 2 * 2 / GB  # int16 chunk of 125 trials and its float copy
    return Row("read betas", train + N_TEST * N_STREAMS * 4 / GB + chunk, 0.0, 0.0, float("nan"), 0.0,
               "model: output arrays + one chunk (measured by benchmarks/simulate_and_read.py at smaller sizes)")


def dataset_figures() -> dict:
    """The NSD files the subject's sessions are read from (recon.nsd_sizes at NSD's published shapes), in GB: they
    lie at RECON_NSD_ROOT, not on the cache's disk, so they are reported beside the budget, not in it."""
    files = nsd_sizes.breakdown(nsd_sizes.NSD, SUBJECT, N_SESSIONS)
    return {"subject": SUBJECT, "sessions": N_SESSIONS, "gb": round(sum(files.values()) / GB, 1),
            "files_gb": {name: round(size / GB, 3) for name, size in files.items()},
            "source": "modelled from NSD's published shapes by recon.nsd_sizes, not measured against the bucket"}


def one_disk(dataset_gb: float, cache_disk_gb: float) -> str:
    """Whether the tree and the cache could share one disk of the budget's size, said plainly."""
    disk = BUDGET["disk"]
    if dataset_gb + cache_disk_gb <= disk:
        return f"they fit one {disk} GB disk"
    if dataset_gb > disk:
        return f"they do not fit one {disk} GB disk (the tree alone does not): the tree needs a volume of its own"
    return f"they do not fit one {disk} GB disk: keep the tree on another volume"


def dataset_lines(dataset: dict, cache_disk_gb: float) -> list[str]:
    """What the report says of the tree: its size, where it lies, and whether tree and cache share one disk."""
    files = dataset["files_gb"]
    largest = sorted(files, key=files.get, reverse=True)[:2]
    rest = sum(gb for name, gb in files.items() if name not in largest)
    return [f"dataset: {dataset['subject']} {dataset['gb']:.1f} GB ({dataset['sessions']} sessions; at RECON_NSD_ROOT, "
            f"not on the {BUDGET['disk']} GB cache disk; {dataset['source']})",
            "  " + ", ".join(f"{name} {files[name]:.1f} GB" for name in largest) + f", the other files {rest:.2f} GB",
            f"dataset and cache together: {dataset['gb'] + cache_disk_gb:.1f} GB; "
            + one_disk(dataset["gb"], cache_disk_gb)]


RESULTS = Path(__file__).resolve().parents[1] / "results" / "nsd_scale"
#: the cards the report plans for
CARDS = (80, 40, 24, 16, 12)


def card_plans() -> list[dict]:
    """recon.gpu_budget's plan for each card of :data:`CARDS`: fits or not, the settings it changes, the peak."""
    from recon.config import ConfigError
    from recon.profiles import get_profile

    nsd = get_profile("nsd")
    plans = []
    for card in CARDS:
        try:
            fitted, peaks = gpu_budget.fit(nsd, card)
        except ConfigError as err:
            plans.append({"gpu_gb": card, "fits": False, "why": str(err)})
            continue
        stage = max(peaks, key=peaks.get)
        changed = gpu_budget.Settings.of(fitted).changes(nsd)
        plans.append({"gpu_gb": card, "fits": True, "peak_gb": round(peaks[stage], 1), "peak_stage": stage,
                      "changed": changed})
    return plans


def write_report(folder: Path, rows: list[Row], figures: dict, gpu_hours: float, args, dataset: dict) -> None:
    """latest.json (every row, the peaks, the card plans, the NSD tree's size) and latest.md (the book's table, and
    the tree beside it), written whole."""
    import datetime
    import json
    import os
    import platform

    from recon.results import environment

    plans = card_plans()
    smallest = min(plan["gpu_gb"] for plan in plans if plan["fits"])
    report = {"meta": {"date": datetime.date.today().isoformat(), "cpu": environment()["cpu"],
                       "machine": platform.machine(), "torch": torch.__version__, "fraction": args.fraction,
                       "columns": args.columns, "voxels": args.voxels},
              "rows": [r.__dict__ for r in rows],
              "peak": {k: round(v, 1) for k, v in figures.items()}, "gpu_hours": round(gpu_hours, 1),
              "cards": plans, "smallest_card_gb": smallest, "dataset": dataset}
    lines = [":::{table} Host memory, GPU memory, disk and GPU time of each stage for one subject of the real NSD "
             f"(`benchmarks/nsd_scale.py`, {report['meta']['date']}), against the 128 GB host, the GPU and the 64 GB "
             "disk of the target machine. GPU memory: each job's networks and batch (their models are released "
             "after it) plus 1 GB of CUDA context.", ":name: tbl-nsd-budget", "",
             "| stage | host GB | GPU GB | disk GB | GPU time |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        minutes = r.gpu_seconds / 60
        time_text = "–" if minutes == 0 else "< 1 min" if minutes < 1 else f"{minutes:.1f} min"
        lines.append(f"| {r.stage} | {r.host_gb:.1f} | {r.gpu_gb:.1f} | {r.disk_gb:.2f} | {time_text} |")
    lines += [f"| **peak / total** | **{figures['host']:.1f} / 128** | **{figures['gpu']:.1f}** | "
              f"**{figures['disk']:.1f} / 64** | **~{gpu_hours:.1f} h** |", ":::", "",
              f"The disk column is the cache's. The NSD files {dataset['subject']}'s {dataset['sessions']} sessions "
              f"are read from take {dataset['gb']:.1f} GB more at `RECON_NSD_ROOT` ({dataset['source']}); with the "
              f"cache, {dataset['gb'] + figures['disk']:.1f} GB: {one_disk(dataset['gb'], figures['disk'])}.", "",
              ":::{table} The cards `recon.gpu_budget` plans for (`benchmarks/nsd_scale.py --gpu-gb N`): the settings "
              "it changes and the largest stage. Precision stays the profile's on every card.", ":name: tbl-gpu-cards",
              "", "| card | fits | settings | largest stage |", "| ---: | --- | --- | --- |"]
    for plan in plans:
        if plan["fits"]:
            settings = ", ".join(f"{k} {v}" for k, v in plan["changed"].items()) or "the profile's own"
            lines.append(f"| {plan['gpu_gb']} GB | yes | {settings} | {plan['peak_stage']}, {plan['peak_gb']} GB |")
        else:
            lines.append(f"| {plan['gpu_gb']} GB | no | – | {plan['why']} |")
    lines.append(":::")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("latest.json", json.dumps(report, indent=1) + "\n"), ("latest.md", "\n".join(lines) + "\n")):
        tmp = folder / f".{name}.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, folder / name)


def gpu_plan(gpu_gb: float, alone: bool = False) -> dict[str, float]:
    """recon.gpu_budget's plan for a card of ``gpu_gb``: the settings it chooses and each stage's peak. Exits naming
    the stage that cannot fit."""
    from recon.config import ConfigError
    from recon.profiles import get_profile

    nsd = get_profile("nsd")
    try:
        fitted, peaks = gpu_budget.fit(nsd, gpu_gb)
    except ConfigError as err:
        print(f"does not fit: {err}")
        raise SystemExit(1)
    changed = gpu_budget.Settings.of(fitted).changes(nsd)
    print(f"a {gpu_gb:g} GB card: " + (", ".join(f"{k} {v}" for k, v in changed.items()) if changed
                                      else "the nsd profile's own settings") + " (recon.gpu_budget.fit)")
    for stage, gb in peaks.items():
        print(f"  {stage:<44}{gb:>6.1f} GB")
    print(f"  (weights in {nsd.dtype}, SD 1.4 under {nsd.sd_autocast} autocast; each job's networks released after "
          f"it; {gpu_budget.CUDA_OVERHEAD_GB:g} GB of CUDA context counted per stage; planned to "
          f"{gpu_budget.HEADROOM:.0%} of the card)")
    if alone:  # the plan is the whole report
        print(f"fits: gpu {max(peaks.values()):.1f}/{gpu_gb:g} GB")
    return peaks


#: activation probes: kind -> (what runs, the rows recon.gpu_budget counts)
PROBES = ("unet", "vae decode", "vae encode", "vgg19 forward and backward", "relu7 generator forward and backward")


def probe_activation(kind: str, rows: int) -> float:
    """Peak anonymous memory (GB) of one call of ``kind`` at ``rows`` rows, float32, in this (fresh) process."""
    import nsd_dryrun  # beside this script, which runs each probe (its folder is on sys.path)

    configs = nsd_dryrun.Architectures.published().configs
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torchvision.models import vgg19

    torch.manual_seed(0)
    with torch.no_grad():
        if kind == "unet":
            net = UNet2DConditionModel.from_config(configs["sd_unet"]).eval()
            args = (torch.randn(rows, 4, 64, 64), torch.full((rows,), 781), torch.randn(rows, 77, 768))
            call = lambda: net(args[0], args[1], encoder_hidden_states=args[2])  # noqa: E731
        elif kind in ("vae decode", "vae encode"):
            net = AutoencoderKL.from_config(configs["vae"]).eval()
            z, x = torch.randn(rows, 4, 64, 64), torch.randn(rows, 3, 512, 512)
            call = (lambda: net.decode(z)) if kind == "vae decode" else (lambda: net.encode(x))
    if kind == "vgg19 forward and backward":
        net = vgg19().eval().requires_grad_(False)
        x = torch.rand(rows, 3, 224, 224, requires_grad=True)
        call = lambda: net(x).square().sum().backward()  # noqa: E731
    elif kind == "relu7 generator forward and backward":  # +G's code -> 256 px image, the gradient back to the code
        from recon.kamitani import AlexNetGenerator

        net = AlexNetGenerator().eval().requires_grad_(False)
        x = torch.rand(rows, 4096, requires_grad=True)
        call = lambda: net(x).square().sum().backward()  # noqa: E731
    if kind not in PROBES:
        raise SystemExit(f"unknown probe {kind!r}; one of {', '.join(PROBES)}")
    with PeakAnonymousMemory() as m:
        if kind.endswith("forward and backward"):
            call()
        else:
            with torch.no_grad():
                call()
    return m.used


def measure_activations() -> None:
    """Each probe at two sizes, each in a fresh process (an allocator that has memory to reuse hides a peak): the
    fixed part and the slope per row, beside those recon.gpu_budget plans with."""
    import subprocess

    sizes = {"unet": (2, 4), "vae decode": (1, 2), "vae encode": (1, 2), "vgg19 forward and backward": (2, 8),
             "relu7 generator forward and backward": (2, 8)}
    for kind in PROBES:
        used = []
        for rows in sizes[kind]:
            out = subprocess.run([sys.executable, __file__, "--threads", "1", "--probe", kind, str(rows)],
                                 capture_output=True, text=True, check=True).stdout
            used.append(float(out.strip().splitlines()[-1]))
        (a, b), (ua, ub) = sizes[kind], used
        slope = (ub - ua) / (b - a)
        fixed = max(0.0, ua - slope * a)
        planned = gpu_budget.ACTIVATIONS[kind]
        print(f"{kind:<28} measured {fixed:.2f} GB + {slope:.3f} GB per row ({a} rows {ua:.2f}, {b} rows {ub:.2f}); "
              f"planned {planned[0]:.2f} + {planned[1]:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.05, help="share of rows measured where rows are cut")
    parser.add_argument("--columns", type=int, default=4096, help="target columns measured per decoder")
    parser.add_argument("--voxels", type=int, default=1024, help="voxels measured per decoder (time scales as p³)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-gb", type=float, default=BUDGET["gpu"],
                        help="the card to plan for, GB (default 80): each stage's peak against it and the settings "
                             "recon.gpu_budget.fit chooses")
    parser.add_argument("--gpu-plan", action="store_true",
                        help="only the card's plan (no measurement): stage peaks, settings and a GPU fits: line")
    parser.add_argument("--activations", action="store_true",
                        help="measure the activations recon.gpu_budget plans with (each call in a fresh process, "
                             "two batch sizes, on this CPU in float32; ~5 min) and compare")
    parser.add_argument("--out-dir", default=str(RESULTS),
                        help="where latest.json and latest.md go (default results/nsd_scale/; the book includes the "
                             "table and its prose takes the figures from the JSON); '' writes nothing")
    parser.add_argument("--probe", nargs=2, metavar=("KIND", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out_dir = Path(args.out_dir) if args.out_dir else None  # '' writes nothing
    torch.set_num_threads(args.threads)
    if args.probe:
        print(probe_activation(args.probe[0], int(args.probe[1])))
        return
    if args.activations:
        measure_activations()
        return
    plan = gpu_plan(args.gpu_gb, alone=args.gpu_plan)
    if args.gpu_plan:
        return
    rows: list[Row] = [reader_row()]
    scratch_peak = 0.0
    with tempfile.TemporaryDirectory(prefix="nsd-scale-") as tmp:
        tmp = Path(tmp)
        for name in ("blip", "dpt"):
            shape = TARGETS[name] if name != "dpt" else TARGETS[name][1:]
            row, train_bytes = measure_feature_stream(name, shape, args, tmp)
            rows.append(row)
            print(row, flush=True)
        decoder, prepared = prepared_decoder(args)
        for name, shape in TARGETS.items():
            q = int(np.prod(shape))
            row, scratch = measure_decoder(name, q, decoder, prepared, args, tmp)
            if name == "dpt":  # decoded one layer at a time: one layer's training features on disk at once
                scratch /= 4
            scratch_peak = max(scratch_peak, scratch)
            rows.append(row)
            print(row, flush=True)
            for leftover in tmp.glob(f"{name}-*.npy"):
                leftover.unlink()
        rows.append(measure_gan(args))
        print(rows[-1], flush=True)
        gan = rows[-1]
        rows.append(measure_identification(args))
        print(rows[-1], flush=True)
        rows.append(generation_row(plan))
        rows.append(oracle_row(gan, rows[-1]))
        rows.append(text2img_row(plan))
        rows.append(ledger_row(plan))
        print(rows[-1], flush=True)
    rows.append(Row("scratch (largest at once)", 0.0, 0.0, scratch_peak, float("nan"), 0.0,
                    "training features of one target (one DPT layer), deleted once decoded"))
    print()
    print(f"{'stage':<28}{'host GB':>9}{'GPU GB':>9}{'disk GB':>9}{'CPU here':>14}{'GPU':>11}")
    for r in rows:
        cpu = "-" if np.isnan(r.cpu_seconds) else f"{r.cpu_seconds / 60:.1f} min"
        print(f"{r.stage:<28}{r.host_gb:>9.1f}{r.gpu_gb:>9.1f}{r.disk_gb:>9.2f}{cpu:>14}{r.gpu_seconds / 60:>7.1f} min")
    for r in rows:
        if r.note:
            print(f"  {r.stage}: {r.note}")
    host = max(r.host_gb for r in rows)
    gpu = max(max(r.gpu_gb for r in rows), max(plan.values()))
    BUDGET["gpu"] = args.gpu_gb
    disk = sum(r.disk_gb for r in rows)
    total_gpu = sum(r.gpu_seconds for r in rows) / 3600
    print(f"GPU time per subject (arithmetic): {total_gpu:.1f} h")
    dataset = dataset_figures()
    for line in dataset_lines(dataset, disk):
        print(line)
    figures = {"host": host, "gpu": gpu, "disk": disk}
    over = [f"{k} {v:.1f}/{BUDGET[k]} GB" for k, v in figures.items() if v > BUDGET[k]]
    if over:
        print("does not fit: " + ", ".join(over))
        raise SystemExit(1)
    if args.out_dir is not None:
        write_report(args.out_dir, rows, figures, total_gpu, args, dataset)
    print(f"fits: host {host:.1f}/128 GB, gpu {gpu:.1f}/{args.gpu_gb:g} GB, disk {disk:.1f}/64 GB")


if __name__ == "__main__":
    main()
