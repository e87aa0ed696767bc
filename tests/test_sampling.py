"""img2img noises its init latent as the authors' CompVis DDIMSampler does (recon.sampling).

The reference below re-implements, from the CompVis latent-diffusion code the authors run
(ldm/models/diffusion/ddim.py: make_ddim_timesteps with "uniform" discretisation, stochastic_encode, decode,
p_sample_ddim at eta 0 with classifier-free guidance), their img2img on the same UNet and the same noise, and the
pipeline's latents must follow it step for step.
"""

import numpy as np
import pytest
import torch

from recon import models
from recon.profiles import get_profile
from recon.sampling import CompVisDDIMScheduler, scheduler_class

#: Stable Diffusion 1.4's scheduler settings (its Hub folder's scheduler_config.json), for DDIM
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def compvis_img2img(unet, x0, cond, uncond, noise, *, strength, steps, guidance_scale, alphas_cumprod):
    """The authors' img2img: ``stochastic_encode(x0, t_enc)`` then ``decode(x, cond, t_start=t_enc)``."""
    ddim_timesteps = np.arange(0, 1000, 1000 // steps) + 1  # make_ddim_timesteps("uniform", steps, 1000)
    ddim_alphas = alphas_cumprod[ddim_timesteps]
    ddim_alphas_prev = torch.cat([alphas_cumprod[:1], alphas_cumprod[ddim_timesteps[:-1]]])
    t_enc = int(strength * steps)
    x = ddim_alphas[t_enc].sqrt() * x0 + (1 - ddim_alphas[t_enc]).sqrt() * noise  # stochastic_encode
    for i, step in enumerate(np.flip(ddim_timesteps[:t_enc])):  # decode
        index = t_enc - i - 1
        t = torch.full((2 * len(x),), int(step))
        e_uncond, e_cond = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
        e_t = e_uncond + guidance_scale * (e_cond - e_uncond)
        a_t, a_prev = ddim_alphas[index], ddim_alphas_prev[index]
        pred_x0 = (x - (1 - a_t).sqrt() * e_t) / a_t.sqrt()
        x = a_prev.sqrt() * pred_x0 + (1 - a_prev).sqrt() * e_t  # eta 0: no noise, sigma 0
    return x


def test_the_authors_start_keeps_0191_of_the_init_latent():
    """50 steps at strength 0.8: noised at 801 (sqrt(alpha_bar) 0.191), where diffusers noises at 781 (0.208)."""
    scheduler = CompVisDDIMScheduler(**SD_SCHEDULER)
    scheduler.set_timesteps(50)
    first = scheduler.timesteps[50 - int(50 * 0.8):][:1]  # diffusers' img2img: the first step it denoises
    assert first.tolist() == [781] and scheduler.timestep_above(first).tolist() == [801]
    kept = scheduler.alphas_cumprod.sqrt()
    assert round(float(kept[801]), 3) == 0.191 and round(float(kept[781]), 3) == 0.208
    x0, noise = torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    torch.testing.assert_close(scheduler.add_noise(x0, noise, first), kept[801] * x0)
    # at strength 1 no timestep lies above the first: the last training timestep
    assert scheduler.timestep_above(scheduler.timesteps[:1]).tolist() == [999]
    with pytest.raises(ValueError, match="not all in the schedule"):
        scheduler.timestep_above(torch.tensor([780]))
    with pytest.raises(ValueError, match="init_noise must be one of compvis, diffusers"):
        scheduler_class("k-diffusion")


@pytest.mark.parametrize("init_noise", ["compvis", "diffusers"])
def test_img2img_follows_the_compvis_sampler_step_for_step(init_noise):
    torch.manual_seed(0)
    profile = get_profile("toy", init_noise=init_noise)
    pipe = models.img2img(profile)
    assert type(pipe.scheduler) is scheduler_class(init_noise)
    steps, strength, scale = 10, 0.8, 5.0
    x0 = torch.randn(1, 4, 16, 16)
    cond, uncond = torch.randn(1, 77, pipe.unet.config.cross_attention_dim), torch.randn(1, 77, pipe.unet.config.cross_attention_dim)
    generator = torch.Generator().manual_seed(7)
    latents = pipe(image=x0, prompt_embeds=cond, negative_prompt_embeds=uncond, strength=strength,
                   guidance_scale=scale, num_inference_steps=steps, generator=[generator], output_type="latent").images
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(7))  # what the pipeline drew
    with torch.no_grad():
        reference = compvis_img2img(pipe.unet, x0, cond, uncond, noise, strength=strength, steps=steps,
                                    guidance_scale=scale, alphas_cumprod=pipe.scheduler.alphas_cumprod)
    if init_noise == "compvis":
        torch.testing.assert_close(latents, reference, rtol=1e-4, atol=1e-4)
    else:  # diffusers' own noising starts from another latent, so ends elsewhere
        assert (latents - reference).abs().max() > 1e-2


def test_depth2img_noises_as_the_authors_too_and_the_fidelity_table_says_where():
    from recon import fidelity
    from recon.sampling import noising_timesteps

    assert type(models.depth2img(get_profile("toy")).scheduler) is CompVisDDIMScheduler
    assert noising_timesteps(50, 0.8, "compvis") == (801, 781) and noising_timesteps(50, 0.8, "diffusers") == (781, 781)
    assert noising_timesteps(20, 0.8, "compvis") == (801, 751)  # the toy's 20 steps
    rows = fidelity.table(("nsd",)).set_index("step")
    assert "noised at 801, denoised from 781: compvis's" in rows.loc["sampler", "nsd"]
    assert rows.loc["sampler", "nsd: authors'?"] == "same"
    diffusers = fidelity.table((get_profile("nsd", init_noise="diffusers"),)).set_index("step")
    assert diffusers.loc["sampler", "nsd: authors'?"] == "deviation"


def same_noise(a: np.ndarray, b: np.ndarray) -> bool:
    """Two generations from the same noise and input, at different rows of one batch: equal but for the kernels'
    rounding, which may differ by batch row (with AVX2 kernels 0.004% of pixels moved by 1 grey level; AVX512 gave
    equal bytes). Generations from different noise differ by ~19 grey levels on average."""
    return np.abs(a.astype(int) - b.astype(int)).max() <= 2


def different_noise(a: np.ndarray, b: np.ndarray) -> bool:
    return np.abs(a.astype(int) - b.astype(int)).mean() > 4


def test_every_images_kth_generation_starts_from_the_same_noise():
    """sample_noise "authors": the authors' SD 1.4 script runs one test image per process after seed_everything(42),
    encodes its init image once (a posterior sample) and then draws each of its 5 generations' noise in turn, so
    the k-th generation of every image starts from the same noise; the draws are re-made here in that order."""
    from recon import methods

    latent = (1, 4, 8, 8)
    stream = torch.Generator().manual_seed(42)  # the authors' order: posterior first, then the noises
    posterior, noises = torch.randn(latent, generator=stream), [torch.randn(latent, generator=stream) for _ in range(3)]
    generators = methods.stream_generators(42, 2, 3, [latent], [latent])
    assert len(generators) == 6
    for row, generator in enumerate(generators):  # image row // 3, sample row % 3: the same noise for every image
        torch.testing.assert_close(torch.randn(latent, generator=generator), noises[row % 3], rtol=0, atol=0)
    assert not torch.equal(posterior, noises[0])
    # +D (their SD 2 script): a posterior sample and a noise per generation
    depth = methods.stream_generators(42, 1, 2, [], [latent, latent])
    stream = torch.Generator().manual_seed(42)
    draws = [torch.randn(latent, generator=stream) for _ in range(4)]
    for k, generator in enumerate(depth):
        assert torch.equal(torch.randn(latent, generator=generator), draws[2 * k])
        assert torch.equal(torch.randn(latent, generator=generator), draws[2 * k + 1])

    # the pipeline draws them so: two copies of one image at different places get the same generations
    profile = get_profile("toy")
    pipe = models.img2img(profile)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    images, embeds = np.concatenate([image, image]), np.repeat(rng.normal(size=(1, pipe.tokenizer.model_max_length, pipe.unet.config.cross_attention_dim)).astype(np.float32), 2, axis=0)
    common = dict(prompt_embeds=embeds, init_images=images, n_samples=2, strength=0.8, guidance_scale=5.0,
                  num_inference_steps=4, seed=0, batch_size=4, progress=False)
    authors = methods.img2img(pipe, None, sample_noise="authors", **common)
    assert same_noise(authors[0], authors[1]) and different_noise(authors[0, 0], authors[0, 1])
    independent = methods.img2img(pipe, None, sample_noise="independent", **common)
    assert different_noise(independent[0], independent[1])
    with pytest.raises(ValueError, match="sample_noise must be one of authors, independent"):
        methods.img2img(pipe, None, sample_noise="shared", **common)


def test_depth2img_draws_each_generations_posterior_and_noise_from_the_images_stream():
    from recon import methods

    profile = get_profile("toy")
    pipe = models.depth2img(profile)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    depth = rng.uniform(0, 1, (1, 16, 16)).astype(np.float32)
    common = dict(n_samples=2, strength=0.8, guidance_scale=5.0, num_inference_steps=4, seed=0, batch_size=4,
                  progress=False)
    twice = methods.depth2img(pipe, np.concatenate([image, image]), np.concatenate([depth, depth]), ["a red ball"] * 2,
                              sample_noise="authors", **common)
    assert same_noise(twice[0], twice[1]) and different_noise(twice[0, 0], twice[0, 1])


def test_sd_samples_under_autocast_as_the_authors_precision_scope_and_depth_never():
    """sd_autocast: the authors' SD 1.4 script decodes z to its init image and runs its whole sampling loop (the empty
    prompt, DDIM, the decoding) inside ``precision_scope("cuda")`` (torch.autocast), but encodes the init image and
    the caption before it, in float32; their SD 2 depth script never enters autocast. Forward hooks record the dtype
    each network computes in (float16 on the CPU's autocast stands in for the GPU's)."""
    from recon import recipes

    profile = get_profile("toy", sd_autocast="float16", n_samples=1, num_inference_steps=4)
    sd, depth = models.img2img(profile), models.depth2img(profile)
    seen = []

    def record(name, module):
        module.register_forward_hook(lambda m, i, out: seen.append((name, out.dtype)))

    for prefix, pipe in (("sd", sd), ("depth", depth)):
        record(f"{prefix} vae encoder", pipe.vae.encoder.conv_in)
        record(f"{prefix} vae decoder", pipe.vae.decoder.conv_in)
        record(f"{prefix} text encoder", pipe.text_encoder.encoder.layers[0].mlp.fc1)
        record(f"{prefix} unet", pipe.unet.conv_in)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 4, profile.z_size // 8, profile.z_size // 8)).astype(np.float32)
    gan = rng.integers(0, 256, (2, profile.image_size, profile.image_size, 3), dtype=np.uint8)
    inputs = {"z": z, "caption": ["a red ball", "a dog"], "gan": gan,
              "depth": rng.uniform(0.1, 1, (2, 16, 16)).astype(np.float32)}
    try:
        for method in ("+T", "+T+G+D"):
            recipes.reconstruct(profile, method, "sd", inputs, progress=False)
    finally:
        for pipe in (sd, depth):
            for module in (pipe.vae.encoder.conv_in, pipe.vae.decoder.conv_in, pipe.unet.conv_in,
                           pipe.text_encoder.encoder.layers[0].mlp.fc1):
                module._forward_hooks.clear()
    half, single = torch.float16, torch.float32
    plus_t = [entry for entry in seen if entry[0].startswith("sd ")]
    assert plus_t[0] == ("sd vae decoder", half)  # z -> init image, inside precision_scope
    assert plus_t[1] == ("sd vae encoder", single)  # the init image's encoding, before it
    assert plus_t[2] == ("sd text encoder", single)  # the captions' conditioning, before it
    assert plus_t[3] == ("sd text encoder", half)  # the empty prompt, inside it
    assert {dtype for name, dtype in plus_t[4:]} == {half}  # DDIM and the decoding
    assert {name for name, _ in plus_t[4:]} == {"sd unet", "sd vae decoder"}
    assert {dtype for name, dtype in seen if name.startswith("depth ")} == {single}
    assert sum(name == "depth unet" for name, _ in seen) > 0


def test_text_to_image_uses_the_img2img_networks_from_noise_and_its_own_seeds():
    """The claims page's text-to-image reference: the img2img pipeline's networks and scheduler (nothing loaded
    again), pure noise, every step; one generator per (image, sample), so a batch of one and a batch of all give the
    same images, and another seed other images."""
    from diffusers import StableDiffusionPipeline

    from recon import methods

    profile = get_profile("toy")
    pipe = models.img2img(profile)
    common = dict(n_samples=2, size=64, guidance_scale=5.0, num_inference_steps=4, seed=0, progress=False)
    prompts = ["a red ball on a table", "two green boxes"]
    together = methods.text2img(pipe, prompts, batch_size=4, **common)
    assert together.shape == (2, 2, 64, 64, 3) and together.dtype == np.uint8
    assert same_noise(methods.text2img(pipe, prompts, batch_size=2, **common), together)  # but the kernels' rounding
    assert different_noise(methods.text2img(pipe, prompts, batch_size=4, **common | {"seed": 1}), together)
    assert different_noise(together[0, 0], together[0, 1])  # each sample its own noise
    shared = StableDiffusionPipeline.from_pipe(pipe)
    assert shared.unet is pipe.unet and shared.scheduler is pipe.scheduler and shared.vae is pipe.vae
