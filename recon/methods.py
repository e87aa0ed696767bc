"""The reconstruction methods: [30] (baseline), +T, +G and +D, as functions of decoded inputs.

Each takes decoded features (numpy, one row per test image) and returns uint8 images of shape
(n_images, n_samples, H, W, 3). Generation is batched; every sample's noise comes from a generator of its own
(:data:`SAMPLE_NOISE`: a copy of its image's stream at that sample's place, as the authors draw them, or one
seeded by (seed, image index, sample index)), so it does not depend on the batch size. The arithmetic
can: batched kernels may round differently (the toy zoo's img2img moved a few uint8 pixels by 1 between
batches of 60 and 120 on 2 CPU cores), so a result table holds for the profile's own ``batch_size``.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur
from tqdm.auto import tqdm

from .features import batches, to_uint8, vgg_activations


def sample_generators(seed: int, image_indices, n_samples: int, device) -> list[torch.Generator]:
    """One generator per (image, sample), seeded independently of batching."""
    gens = []
    for i in image_indices:
        for k in range(n_samples):
            gens.append(torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(i) * 1_009 + k))
    return gens


#: how a run's generations draw their noise (Profile.sample_noise):
#: "authors": as the authors' scripts, every image's generations continue one stream seeded by ``seed`` alone, so
#: the k-th generation of every test image starts from the same noise (their SD 1.4 script runs one image per
#: process after seed_everything(42): the init image's posterior sample once, then each generation's DDIM noise;
#: their SD 2 depth script draws a posterior sample and a noise per generation);
#: "independent": each (image, sample) its own generator, seeded by (seed, image, sample)
SAMPLE_NOISE = ("authors", "independent")


def stream_generators(seed: int, n_images: int, n_samples: int, prefix: list[tuple], per_sample: list[tuple],
                      dtype: torch.dtype = torch.float32) -> list[torch.Generator]:
    """One generator per (image, sample), row-major, each continuing one stream seeded by ``seed``: sample k's starts
    where the stream stands after the draws of ``prefix`` (tensors of these shapes, drawn once) and of ``per_sample``
    for samples 0..k-1. A pipeline given these draws, row by row, what a loop over the samples would draw from the
    one stream. Every image's stream is the same one. ``dtype``: the pipeline's, in which its draws are made (the
    stream is advanced by the same draws)."""
    stream = torch.Generator(device="cpu").manual_seed(int(seed))
    for shape in prefix:
        torch.randn(shape, generator=stream, dtype=dtype)
    states = []
    for _ in range(n_samples):
        states.append(stream.get_state())
        for shape in per_sample:
            torch.randn(shape, generator=stream, dtype=dtype)
    return [torch.Generator(device="cpu").set_state(state) for _ in range(n_images) for state in states]


def _check_sample_noise(sample_noise: str) -> None:
    if sample_noise not in SAMPLE_NOISE:
        raise ValueError(f"sample_noise must be one of {', '.join(SAMPLE_NOISE)}, got {sample_noise!r}")


@torch.no_grad()
def _encode_once_per_image(pipe, images: np.ndarray, seed: int) -> torch.Tensor:
    """The init images' scaled latents as the pipeline would encode them, each a posterior sample drawn first from
    its image's stream (the authors' SD 1.4 script encodes once, before its generations)."""
    pixels = pipe.image_processor.preprocess(images.astype(np.float32) / 255.0).to(pipe.vae.device, pipe.vae.dtype)
    posterior = pipe.vae.encode(pixels).latent_dist
    generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for _ in range(len(images))]
    return pipe.vae.config.scaling_factor * posterior.sample(generator=generators)


def under_autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` in ``dtype`` (the authors' ``precision_scope``), or no change for None."""
    return nullcontext() if dtype is None else torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _as_images(output, n: int, n_samples: int) -> np.ndarray:
    images = to_uint8(np.asarray(output.images))
    return images.reshape(n, n_samples, *images.shape[1:])


@torch.no_grad()
def init_images_from_latents(vae, latents: np.ndarray, size: int, batch_size: int = 32, progress=True,
                             autocast: torch.dtype | None = None) -> np.ndarray:
    """Decoded z as the init image of img2img, as the authors' diffusion_decoding.py makes it: the VAE decodes
    the (scaled) latent (under ``autocast``, as theirs in its precision_scope), the image is clamped to [0, 1],
    scaled to 0-255 and truncated to uint8, then resized to ``size`` by PIL's default (bicubic); img2img encodes
    it again."""
    from .features import pil_resize

    out = []
    for rows in batches(len(latents), batch_size, "decoded z -> init images", progress):
        z = torch.from_numpy(np.asarray(latents[rows], dtype=np.float32)).to(vae.device, vae.dtype)
        with under_autocast(vae.device, autocast):
            x = ((vae.decode(z / vae.config.scaling_factor).sample.float() + 1) / 2).clamp(0, 1)
        pixels = (255.0 * x.permute(0, 2, 3, 1).cpu().numpy()).astype(np.uint8)
        out.append(pil_resize(pixels, size, "bicubic"))
    return np.concatenate(out)


def img2img(pipe, init_latents: np.ndarray, *, prompt_embeds: np.ndarray | None = None, prompts=None,
            init_images: np.ndarray | None = None, n_samples: int, strength: float, guidance_scale: float,
            num_inference_steps: int, seed: int, batch_size: int, sample_noise: str = "authors",
            autocast: torch.dtype | None = None, progress=True) -> np.ndarray:
    """Stable Diffusion img2img from decoded z (or an init image) and decoded c (or a caption).

    ``init_latents`` are scaled VAE latents (n, 4, h, w), passed to the pipeline as the image, or
    ``None`` with ``init_images`` (uint8) to let the pipeline encode them (+G). ``sample_noise``: see
    :data:`SAMPLE_NOISE`; with "authors" an init image is encoded here, once, its posterior sample the first draw
    of its stream, and each generation's noise the next. ``autocast``: the pipeline runs under
    ``torch.autocast`` in this dtype, as the authors' sampling loop (the empty prompt, DDIM and the decoding);
    the init image and the captions are encoded before it, in the weights' dtype, as theirs are.
    """
    _check_sample_noise(sample_noise)
    n = len(init_latents) if init_latents is not None else len(init_images)
    device, dtype = pipe.unet.device, pipe.unet.dtype
    per_batch = max(1, batch_size // n_samples)
    out = []
    for rows in batches(n, per_batch, "img2img", progress):
        idx = np.arange(n)[rows]
        if init_latents is not None:
            latents = torch.from_numpy(np.asarray(init_latents[rows])).to(device, dtype)
            posterior_draws = []
        elif sample_noise == "authors":
            latents = _encode_once_per_image(pipe, init_images[rows], seed).to(device, dtype)
            posterior_draws = [(1, *latents.shape[1:])]
        else:
            latents = None
        if latents is not None:
            image = latents.repeat_interleave(n_samples, dim=0)
        else:
            image = np.repeat(init_images[rows], n_samples, axis=0).astype(np.float32) / 255.0
        if sample_noise == "authors":
            generators = stream_generators(seed, len(idx), n_samples, posterior_draws, [(1, *latents.shape[1:])], dtype)
        else:
            generators = sample_generators(seed, idx, n_samples, device)
        kwargs = {}
        if prompt_embeds is not None:
            kwargs["prompt_embeds"] = torch.from_numpy(np.repeat(prompt_embeds[rows], n_samples, axis=0)).to(device, dtype)
        else:
            repeated = [p for p in np.asarray(prompts)[rows] for _ in range(n_samples)]
            if autocast is None:
                kwargs["prompt"] = repeated
            else:  # captions embedded outside autocast, as the authors' get_learned_conditioning
                with torch.no_grad():
                    kwargs["prompt_embeds"] = pipe.encode_prompt(repeated, device, 1, False)[0]
        with under_autocast(device, autocast):
            result = pipe(
                image=image,
                strength=strength,
                guidance_scale=guidance_scale,
                num_inference_steps=num_inference_steps,
                generator=generators,
                output_type="np",
                **kwargs,
            )
        out.append(_as_images(result, len(idx), n_samples))
    return np.concatenate(out)


def text2img(pipe, prompts, *, n_samples: int, size: int, guidance_scale: float, num_inference_steps: int, seed: int,
             batch_size: int, autocast: torch.dtype | None = None, progress=True) -> np.ndarray:
    """Stable Diffusion's own text-to-image output (n, n_samples, size, size, 3) from ``prompts``: the networks and
    scheduler of the img2img ``pipe`` (diffusers' ``from_pipe``, nothing loaded twice) denoising from pure noise
    over all ``num_inference_steps``, one generator per (image, sample) (:func:`sample_generators`), the captions
    embedded outside ``autocast`` as :func:`img2img` embeds them. What the generator makes with no z and no image:
    the reference of the paper's "blurred compared with the realistic images that Stable Diffusion would normally
    output" (section 2.1)."""
    from diffusers import StableDiffusionPipeline

    text_to_image = StableDiffusionPipeline.from_pipe(pipe)
    text_to_image.set_progress_bar_config(disable=True)  # as the loaded pipelines (recon.models); from_pipe resets it
    device = pipe.unet.device
    n = len(prompts)
    per_batch = max(1, batch_size // n_samples)
    out = []
    for rows in batches(n, per_batch, "text2img", progress):
        idx = np.arange(n)[rows]
        repeated = [p for p in np.asarray(prompts)[rows] for _ in range(n_samples)]
        with torch.no_grad():
            embeds = pipe.encode_prompt(repeated, device, 1, False)[0]
        with under_autocast(device, autocast):
            result = text_to_image(prompt_embeds=embeds, height=size, width=size, guidance_scale=guidance_scale,
                                   num_inference_steps=num_inference_steps,
                                   generator=sample_generators(seed, idx, n_samples, device), output_type="np")
        out.append(_as_images(result, len(idx), n_samples))
    return np.concatenate(out)


def depth2img(pipe, init_images: np.ndarray, depth_maps: np.ndarray, prompts, *, n_samples: int, strength: float,
              guidance_scale: float, num_inference_steps: int, seed: int, batch_size: int,
              sample_noise: str = "authors", progress=True) -> np.ndarray:
    """Depth-conditioned Stable Diffusion 2 from an init image, a decoded depth map and a caption. ``sample_noise``:
    see :data:`SAMPLE_NOISE`; with "authors" each generation draws its posterior sample and then its noise from the
    image's stream, as their SD 2 script does (which runs one stream through a process's range of images; one
    stream per image is the nearest choice that does not depend on how images are split over processes)."""
    _check_sample_noise(sample_noise)
    n = len(init_images)
    depth_range = np.ptp(np.asarray(depth_maps, dtype=np.float32).reshape(n, -1), axis=1)
    if not np.all(np.isfinite(depth_range)) or np.any(depth_range == 0):
        bad = np.flatnonzero(~np.isfinite(depth_range) | (depth_range == 0))
        # the pipeline min-max scales each map: a flat one divides by zero and yields NaN (black) images
        raise ValueError(f"depth maps of images {bad[:10].tolist()} are constant or not finite; "
                         "depth2img needs a depth range")
    per_batch = max(1, batch_size // n_samples)
    out = []
    for rows in batches(n, per_batch, "depth2img", progress):
        idx = np.arange(n)[rows]
        image = np.repeat(init_images[rows], n_samples, axis=0).astype(np.float32) / 255.0
        depth = torch.from_numpy(np.repeat(depth_maps[rows], n_samples, axis=0)).float()
        result = pipe(
            prompt=[p for p in np.asarray(prompts)[rows] for _ in range(n_samples)],
            image=image,
            depth_map=depth.to(pipe.unet.device, pipe.unet.dtype),
            strength=strength,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            generator=(stream_generators(seed, len(idx), n_samples, [], [_latent_shape(pipe, image)] * 2,
                                         pipe.unet.dtype)
                       if sample_noise == "authors" else sample_generators(seed, idx, n_samples, pipe.unet.device)),
            output_type="np",
        )
        out.append(_as_images(result, len(idx), n_samples))
    return np.concatenate(out)


def _latent_shape(pipe, images: np.ndarray) -> tuple[int, int, int, int]:
    """The shape of one image's VAE latent, as the pipeline encodes ``images`` (n, H, W, 3)."""
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    return (1, pipe.vae.config.latent_channels, images.shape[1] // factor, images.shape[2] // factor)


@torch.no_grad()
def captions_from_vision_features(model, processor, features: np.ndarray, *, repetition_penalty: float,
                                  num_beams: int, max_length: int, min_length: int, prompt: str | None = None,
                                  batch_size: int = 32, progress=True) -> list[str]:
    """+T: BLIP's text decoder generating from decoded ViT features instead of an image's.

    With ``prompt`` the decoder continues that text, which counts towards ``max_length`` / ``min_length``
    and is cut from the caption by its length in characters, as the authors' decode_captions.py does."""
    config = model.config.text_config
    if prompt:
        start = processor.tokenizer(prompt, return_tensors="pt").input_ids[:, :-1]  # without [SEP]
        start[:, 0] = config.bos_token_id
    else:
        start = torch.tensor([[config.bos_token_id]])
    out = []
    for rows in batches(len(features), batch_size, "BLIP captions", progress):
        embeds = torch.from_numpy(np.array(features[rows], dtype=np.float32)).to(model.device, model.dtype)
        input_ids = start.repeat(len(embeds), 1).to(model.device)
        tokens = model.text_decoder.generate(
            input_ids=input_ids,
            encoder_hidden_states=embeds,
            encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=model.device),
            eos_token_id=config.sep_token_id,
            pad_token_id=config.pad_token_id,
            repetition_penalty=repetition_penalty,
            num_beams=num_beams,
            max_length=max_length,
            min_length=min_length,
            do_sample=False,
        )
        out += [text[len(prompt or ""):].strip() for text in processor.batch_decode(tokens, skip_special_tokens=True)]
    return out


@torch.no_grad()
def depth_from_hidden_states(model, hidden_states: np.ndarray, size: int, batch_size: int = 32, progress=True) -> np.ndarray:
    """+D: DPT's neck and head applied to decoded backbone hidden states -> (n, size, size) depth."""
    n_tokens = hidden_states.shape[2]
    side = int(round(np.sqrt(n_tokens - 1)))  # the CLS token plus a square patch grid
    if side * side != n_tokens - 1:
        raise ValueError(f"DPT hidden states have {n_tokens} tokens; expected 1 + a square number")
    out = []
    for rows in batches(len(hidden_states), batch_size, "DPT depth", progress):
        block = torch.from_numpy(np.array(hidden_states[rows], dtype=np.float32)).to(model.device, model.dtype)
        states = model.neck([block[:, i] for i in range(block.shape[1])], side, side)
        depth = model.head(states)
        depth = torch.nn.functional.interpolate(depth.unsqueeze(1), size=(size, size), mode="bicubic", align_corners=False)
        out.append(depth[:, 0].float().cpu())
    return torch.cat(out).numpy()


class PixelGenerator:
    """+G's default generator: the image itself, optimised in pixel space at ``size`` x ``size``.

    ``space="sigmoid"``: pixels are the sigmoid of free parameters (so they stay in [0, 1]) and the
    parameters are Gaussian-blurred after every step, the image prior Shen et al. (2019) used when they
    reconstructed without their deep generator network. ``space="caffe"``: the code is the image in Caffe's
    0-255 scale minus the ImageNet mean, starting at the mean image and not blurred, as bdpy's icnn
    optimises an image (the units the authors' learning rate of 2 is set in). Its cost is VGG19 alone: at
    224 px about 60 GFLOP per image and step, where the SD VAE decoder at 512 px costs ~4 TFLOP.
    """

    IMAGENET_MEAN_RGB = (123.0, 117.0, 104.0)  # ilsvrc_2012_mean, per channel

    def __init__(self, size: int, device="cpu", blur_sigma: float | None = None, space: str = "sigmoid"):
        if space not in ("sigmoid", "caffe"):
            raise ValueError(f"PixelGenerator space must be 'sigmoid' or 'caffe', got {space!r}")
        self.size = size
        self.device = device
        self.space = space
        default_sigma = size / 224 if space == "sigmoid" else 0.0  # 1 px at VGG19's 224
        self.blur_sigma = default_sigma if blur_sigma is None else blur_sigma

    def initial(self, n: int, random: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros((n, 3, self.size, self.size), device=self.device)  # mid-grey / the mean image

    def to(self, dtype: torch.dtype) -> "PixelGenerator":
        return self  # no network: the code's dtype is the optimisation's

    def __call__(self, code: torch.Tensor) -> torch.Tensor:
        if self.space == "caffe":
            mean = torch.tensor(self.IMAGENET_MEAN_RGB, device=code.device, dtype=code.dtype).view(1, 3, 1, 1)
            return (code + mean) / 255.0  # unclipped, as bdpy's image is until its final contrast stretch
        return torch.sigmoid(code)

    @torch.no_grad()
    def after_step(self, code: torch.Tensor) -> None:
        if self.blur_sigma > 0:
            radius = max(1, int(round(2 * self.blur_sigma)))
            code.copy_(gaussian_blur(code, kernel_size=[2 * radius + 1] * 2, sigma=[self.blur_sigma] * 2))


class VAEGenerator:
    """The diffusion model's own VAE decoder as generator: the code is an SD latent.

    Exact but costly: at 512 px its backward pass needs ~6.6 GB of activations per image."""

    def __init__(self, vae, latent_shape):
        self.vae = vae
        self.latent_shape = tuple(latent_shape)

    def initial(self, n: int, random: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros((n, *self.latent_shape), device=self.vae.device)

    def to(self, dtype: torch.dtype) -> "VAEGenerator":
        """A copy whose decoder computes in ``dtype`` (the loaded VAE, shared with the pipelines, is left as it is)."""
        return self if self.vae.dtype == dtype else VAEGenerator(copy.deepcopy(self.vae).to(dtype), self.latent_shape)

    def __call__(self, code: torch.Tensor) -> torch.Tensor:
        decoded = self.vae.decode(code.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return ((decoded.to(torch.promote_types(code.dtype, torch.float32)) + 1) / 2).clamp(0, 1)

    def after_step(self, code: torch.Tensor) -> None:
        pass


class DeepGeneratorNetwork(torch.nn.Module):
    """The generator of Dosovitskiy & Brox (2016) that inverts AlexNet relu7: Shen et al.'s (2019) DGN.

    4096-d code -> three leaky fully connected layers -> 256 x 4 x 4 -> up-convolutions to
    3 x 256 x 256, in Caffe's BGR space with the ImageNet mean subtracted (0-255 scale). Layer
    names are the Caffe model's, so weights converted from it load by name (safetensors,
    ``generator = "dgn:<file>"``); no weights are shipped or downloaded here.
    """

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.defc7, self.defc6, self.defc5 = nn.Linear(4096, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 4096)
        up = lambda c_in, c_out: nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)  # noqa: E731
        self.deconv5, self.conv5_1 = up(256, 256), nn.Conv2d(256, 512, 3, padding=1)
        self.deconv4, self.conv4_1 = up(512, 256), nn.Conv2d(256, 256, 3, padding=1)
        self.deconv3, self.conv3_1 = up(256, 128), nn.Conv2d(128, 128, 3, padding=1)
        self.deconv2, self.deconv1, self.deconv0 = up(128, 64), up(64, 32), up(32, 3)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        act = lambda x: torch.nn.functional.leaky_relu(x, 0.3)  # noqa: E731
        h = act(self.defc5(act(self.defc6(act(self.defc7(code))))))
        h = h.view(-1, 256, 4, 4)
        for layer in (self.deconv5, self.conv5_1, self.deconv4, self.conv4_1, self.deconv3, self.conv3_1,
                      self.deconv2, self.deconv1):
            h = act(layer(h))
        return self.deconv0(h)


class DGNGenerator:
    """+G through Shen et al.'s DGN: the code is a 4096-d AlexNet relu7 vector, kept in relu7's range
    (non-negative, and below ``upper_bound`` where given: the authors clip to 3x fc7's activation range).
    Not the authors' arithmetic (see :class:`AuthorsDGNGenerator` for theirs, from the cookbook's files): its
    crop, resize and clamp to [0, 1] are Shen et al.'s Caffe recipe, and its convolutions are not bdpy's layout.

    The DGN's 256 px output is converted to RGB in [0, 1], centre-cropped to 227 px as in Shen et
    al. and resized to ``size`` for VGG19."""

    CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)

    def __init__(self, network: DeepGeneratorNetwork, size: int = 224, upper_bound=None):
        self.network = network
        self.size = size
        self.upper_bound = upper_bound
        self.device = next(network.parameters()).device

    def initial(self, n: int, random: torch.Generator | None = None) -> torch.Tensor:
        """Zeros, or with ``random`` the authors' random start, N(0, 1) per element."""
        if random is None:
            return torch.zeros((n, 4096), device=self.device)
        return torch.randn((n, 4096), generator=random).to(self.device)

    def to(self, dtype: torch.dtype) -> "DGNGenerator":
        """A copy whose network computes in ``dtype``."""
        if next(self.network.parameters()).dtype == dtype:
            return self
        return DGNGenerator(copy.deepcopy(self.network).to(dtype), self.size, self.upper_bound)

    def __call__(self, code: torch.Tensor) -> torch.Tensor:
        bgr = self.network(code.to(next(self.network.parameters()).dtype)).to(torch.promote_types(code.dtype, torch.float32))
        mean = torch.tensor(self.CAFFE_MEAN_BGR, device=bgr.device, dtype=bgr.dtype).view(1, 3, 1, 1)
        rgb = ((bgr + mean) / 255).flip(1).clamp(0, 1)
        top = (rgb.shape[-1] - 227) // 2
        rgb = rgb[..., top : top + 227, top : top + 227]
        return torch.nn.functional.interpolate(rgb, size=(self.size, self.size), mode="bilinear", antialias=True,
                                               align_corners=False)

    @torch.no_grad()
    def after_step(self, code: torch.Tensor) -> None:
        code.clamp_(min=0)  # relu7 activations are non-negative
        if self.upper_bound is not None:
            code.copy_(torch.minimum(code, torch.as_tensor(self.upper_bound, device=code.device, dtype=code.dtype)))


class AuthorsDGNGenerator:
    """+G as the authors run it (bdpy's icnn with their relu7 generator, recon.kamitani.AlexNetGenerator): the
    code is a 4096-d relu7 vector from N(0, 1), clipped to [0, ``upper_bound``] after every step (their
    act_range/3x/fc7.txt; lower bound 0), and VGG19 sees the centre 224 px of the generator's 256 px output as it
    comes out (Caffe's units). The image is handed on as RGB in [0, 1], unclipped, such that the VGG19's own
    ``preprocess`` (:class:`recon.kamitani.CaffeVGG19`, the same ``mean_bgr`` and ``channel_order``) gives back
    the generator's output: ``(output + mean) / 255``, its channels reversed for ``channel_order="caffe"`` only.
    With "authors" the image's channel k is the generator's channel k plus the k-th BGR mean, which is the image
    the authors save (their deprocess reverses the channels and their final [2, 1, 0] re-save reverses them
    back); its offsets are ilsvrc_2012_mean.npy's channel means, theirs (104, 117, 123), within 0.33 of them."""

    def __init__(self, network, upper_bound, mean_bgr, channel_order: str = "authors", side: int = 224):
        from .kamitani import CHANNEL_ORDERS

        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got {channel_order!r}")
        self.network = network
        self.upper_bound = torch.as_tensor(np.asarray(upper_bound, dtype=np.float32))
        self.mean_bgr = torch.as_tensor(np.asarray(mean_bgr, dtype=np.float32))
        self.channel_order = channel_order
        self.side = side
        self.device = next(network.parameters()).device

    def initial(self, n: int, random: torch.Generator | None = None) -> torch.Tensor:
        """One N(0, 1) code repeated for the ``n`` images, as the authors draw one start (np.random.normal, before
        their loop over images) that every image of a run shares: drawn afresh from ``random``'s seed (so every
        batch gets the same one), or from torch's global generator without it."""
        fresh = None if random is None else torch.Generator().manual_seed(random.initial_seed())
        start = torch.randn((1, self.upper_bound.numel()), generator=fresh)
        return start.expand(n, -1).clone().to(self.device)

    def to(self, dtype: torch.dtype) -> "AuthorsDGNGenerator":
        """A copy whose network computes in ``dtype``."""
        if next(self.network.parameters()).dtype == dtype:
            return self
        return AuthorsDGNGenerator(copy.deepcopy(self.network).to(dtype), self.upper_bound, self.mean_bgr,
                                   self.channel_order, self.side)

    def __call__(self, code: torch.Tensor) -> torch.Tensor:
        from .kamitani import centre_crop

        output = self.network(code.to(next(self.network.parameters()).dtype))
        output = centre_crop(output, self.side).to(torch.promote_types(code.dtype, torch.float32))
        pixels = output + self.mean_bgr.to(output.device, output.dtype).view(1, 3, 1, 1)
        if self.channel_order == "caffe":
            pixels = pixels.flip(1)  # the generator's BGR as RGB
        return pixels / 255.0

    @torch.no_grad()
    def after_step(self, code: torch.Tensor) -> None:
        code.clamp_(min=0)  # the authors' feature_lower_bound
        code.copy_(torch.minimum(code, self.upper_bound.to(code.device, code.dtype)))


def contrast_stretch(images: torch.Tensor, pct: float) -> np.ndarray:
    """Each image's values clipped at the pct / 2 and 100 - pct / 2 percentiles, then mapped min -> 0 and
    max -> 255 and truncated to uint8: bdpy's ``normalize_image(clip_extreme(x, pct))``, which the authors
    apply to every +G image. (n, 3, H, W) float -> (n, H, W, 3) uint8."""
    out = []
    for image in images.detach().double().cpu().numpy().transpose(0, 2, 3, 1):
        image = np.clip(image, np.percentile(image, pct / 2.0), np.percentile(image, 100 - pct / 2.0))
        image = image - image.min()
        if image.max() > 0:
            image = image * (255.0 / image.max())
        out.append(np.uint8(image))
    return np.stack(out)


def rescale_to_reference(targets: dict[str, np.ndarray], reference_std: dict[str, float]) -> dict[str, np.ndarray]:
    """Each image's decoded layer standardised over its units and rescaled to the reference feature SD, its mean
    kept: ``(t - mean) / sd * reference + mean``, as the authors do before +G (bdpy ``normalize_feature`` with
    ``shift='self'``, ``scale=mean(feat_std0)``, ddof 1), where the reference is each layer's SD over a set of
    true image features, averaged over units."""
    out = {}
    for layer, values in targets.items():
        values = np.asarray(values, dtype=np.float64)
        mean = values.mean(axis=1, keepdims=True)
        sd = values.std(axis=1, ddof=1, keepdims=True)
        sd[sd == 0] = 1.0
        out[layer] = ((values - mean) / sd * reference_std[layer] + mean).astype(np.float32)
    return out


def rescale_as_bdpy(targets: dict[str, np.ndarray], reference_std: dict[str, float],
                     channels: dict[str, int | None]) -> dict[str, np.ndarray]:
    """Each image's decoded layer rescaled as the authors do before +G, bdpy's ``normalize_feature(ft,
    channel_wise_mean=False, channel_wise_std=False, channel_axis=0, shift='self', scale=mean(feat_std0[layer]),
    std_ddof=1)`` on the squeezed layer: ``(t - mean) / sd * reference + mean``, the mean over all its units,
    ``sd`` the mean over channels of each channel's SD over its positions (ddof 1) for a conv map (C, H, W), and
    the SD over all units (ddof 1) for an fc layer (a 1-D vector there).

    ``targets``: (n, units) per layer, a conv map's units channel-major (as ``vgg_activations`` flattens them);
    ``channels``: each layer's channel count, None for fc layers. On maps average-pooled to 14 x 14 (the nsd
    profile's ``vgg_pool``) a channel's SD is over 196 pooled cells, not the full map's positions, and smaller
    (pooling averages the fine spatial variation away); ``reference_std`` from feat_std0, measured on full maps,
    then widens the pooled targets' spatial spread beyond what pooled features of real images have."""
    out = {}
    for layer, values in targets.items():
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        mean = values.mean(axis=1, keepdims=True)
        if channels.get(layer) is None:
            sd = values.std(axis=1, ddof=1, keepdims=True)
        else:
            if values.shape[1] % channels[layer]:
                raise ValueError(f"layer {layer!r} has {values.shape[1]} units, not a multiple of its "
                                 f"{channels[layer]} channels")
            per_channel = values.reshape(n, channels[layer], -1).std(axis=2, ddof=1)
            sd = per_channel.mean(axis=1, keepdims=True)
        # bdpy divides by a zero SD (inf / nan); a constant decoded layer is kept as it is instead
        sd[sd == 0] = np.inf
        out[layer] = np.where(np.isinf(sd), values, (values - mean) / sd * reference_std[layer] + mean)
        out[layer] = out[layer].astype(np.float32)
    return out


def images_from_vgg_features(generator, vgg, targets: dict[str, np.ndarray], *, layers, pool: int, steps: int,
                             lr: float, seed: int, batch_size: int = 32, output_size: int | None = None,
                             dtype: torch.dtype | None = None, code_quantum: float | None = None,
                             optimiser: str = "adam", lr_end: float | None = None, momentum: float = 0.9,
                             decay: float = 0.0, contrast_pct: float | None = None, progress=True) -> np.ndarray:
    """+G: nonlinear optimisation after Shen et al. (2019).

    Find the generator code whose image's VGG19 features best match the decoded ones, ``batch_size``
    images at a time, each image on its own. ``generator`` is a :class:`PixelGenerator` (the default: no
    generator network), a :class:`VAEGenerator`, a :class:`DGNGenerator`, or anything with
    ``initial(n, random)``, ``__call__(code) -> image``, ``after_step(code)`` and ``to(dtype)``. Images come
    back as uint8 at ``output_size`` (default: as generated).

    ``optimiser="sgd"`` is the authors' recipe (bdpy's ``icnn.reconstruct`` as their
    recon_icnn_image_vgg19_dgn_relu7gen_gd.py calls it): the loss is the sum over layers of the squared error
    weighted by 1 / ‖t‖² (weights summing to 1); the gradient is divided by its mean absolute value; SGD with
    ``momentum`` at a learning rate going linearly from ``lr`` to ``lr_end`` over the steps; after each step
    the code shrinks by ``decay`` and the generator keeps it in range (the DGN: relu7's, from the authors'
    random start). ``"adam"``: Adam at ``lr``, the loss each layer's squared error over ‖t‖² (the toy's).
    ``contrast_pct`` finishes each image as the authors do (:func:`contrast_stretch`) and resizes it with
    PIL's bicubic, as their diffusion_decoding.py resizes the +G image; None clamps to [0, 1] and resizes
    with an antialiased bicubic.

    ``dtype`` is the optimisation's arithmetic: None computes in the networks' own dtype (the code
    and loss in at least float32); ``torch.float64`` runs float64 copies of the generator and VGG19.
    The optimisation is chaotic in float32: VGG19's ReLUs and max-pools make its gradient jump where
    an activation crosses a kink, and Adam's first step is ``lr * sign(gradient)``, so the last bit
    of rounding decides it. From the same decoded features of the toy profile's subj01, AVX2 and
    AVX512 kernels gave float32 +G images that differed in 77% of their pixels, by 2.8 grey levels on
    average and up to 143; in float64, in one pixel of 1.2 million, by one (benchmarks/cpu_capability.py),
    for about four times the cost (+G of subj01 on 2 cores: 371 s, against ~90 s).

    ``code_quantum`` rounds the code to that grid after every step. float64 shrinks each step's
    rounding difference to ~1e-15 but the chaos still compounds it over the steps: one image of the
    toy subj07's 100 drifted by 8 grey levels between AVX2 and AVX512. On a grid each step starts from
    the same code on both CPUs, so differences no longer carry over; one survives only where a step
    lands within float64 rounding of a grid boundary.
    """
    if optimiser not in ("adam", "sgd"):
        raise ValueError(f"optimiser must be 'adam' or 'sgd' (the authors'), got {optimiser!r}")
    n = len(next(iter(targets.values())))
    if code_quantum is not None and not code_quantum > 0:
        raise ValueError(f"code_quantum must be a positive grid step or None, got {code_quantum!r}")
    if dtype is not None:
        generator, vgg = generator.to(dtype), copy.deepcopy(vgg).to(dtype)
    device = next(vgg.parameters()).device
    vgg_dtype = next(vgg.parameters()).dtype
    work_dtype = torch.promote_types(vgg_dtype, torch.float32)  # the code, targets and loss
    torch.manual_seed(seed)
    random_start = torch.Generator().manual_seed(int(seed)) if optimiser == "sgd" else None
    out = []
    for rows in batches(n, batch_size, "+G feature matching", progress):
        goal = {layer: torch.as_tensor(np.asarray(targets[layer][rows]), device=device).to(work_dtype)
                for layer in layers}
        norms = {layer: goal[layer].pow(2).sum(dim=1).clamp_min(1e-8) for layer in layers}
        if optimiser == "sgd":  # per image, 1 / ||t||^2 normalised to sum to 1 over layers
            total = sum(1 / norms[layer] for layer in layers)
            weights = {layer: 1 / norms[layer] / total for layer in layers}
        code = generator.initial(len(goal[layers[0]]), random_start).to(work_dtype).requires_grad_(True)
        if optimiser == "sgd":
            step_optimiser = torch.optim.SGD([code], lr=lr, momentum=momentum)
        else:
            step_optimiser = torch.optim.Adam([code], lr=lr)
        for step in tqdm(range(steps), desc="  steps", leave=False, disable=not progress):
            acts = vgg_activations(vgg, generator(code).to(vgg_dtype), layers, pool)
            if optimiser == "sgd":
                loss = sum((weights[layer] * (acts[layer].to(work_dtype) - goal[layer]).pow(2).sum(dim=1)).sum()
                           for layer in layers)
            else:
                loss = sum(((acts[layer].to(work_dtype) - goal[layer]).pow(2).sum(dim=1) / norms[layer]).mean()
                           for layer in layers)
            # the gradient of the code alone: the networks' weight gradients (a quarter of the
            # work through the VAE decoder) are never computed, whoever loaded the networks
            (grad,) = torch.autograd.grad(loss, code)
            if optimiser == "sgd":
                scale = grad.abs().flatten(1).mean(1).view(-1, *[1] * (grad.dim() - 1))
                grad = torch.where(scale > 0, grad / torch.where(scale > 0, scale, 1), grad)
                for group in step_optimiser.param_groups:
                    group["lr"] = lr + step * ((lr if lr_end is None else lr_end) - lr) / steps
            code.grad = grad
            step_optimiser.step()
            if decay:
                with torch.no_grad():
                    code.mul_(1 - decay)
            generator.after_step(code)
            if code_quantum is not None:
                with torch.no_grad():
                    code.copy_(torch.round(code / code_quantum) * code_quantum)
        with torch.no_grad():
            image = generator(code).float()
        if contrast_pct is not None:
            from .features import pil_resize

            stretched = contrast_stretch(image, contrast_pct)
            out.append(stretched if output_size is None else pil_resize(stretched, output_size, "bicubic"))
            continue
        image = image.clamp(0, 1)
        if output_size is not None and image.shape[-1] != output_size:
            image = torch.nn.functional.interpolate(image, size=(output_size, output_size), mode="bicubic",
                                                    antialias=True, align_corners=False).clamp(0, 1)
        out.append(to_uint8(image))
    return np.concatenate(out)
