"""Where img2img and depth2img noise their init latent: at the authors' DDIM timestep, not diffusers'.

The authors generate with the CompVis ``DDIMSampler`` (50 DDIM steps, eta 0). At strength ``s`` their scripts
call ``stochastic_encode(z, t_enc)`` with ``t_enc = int(s * 50)``, which noises the init latent to the DDIM
schedule's entry at index ``t_enc`` (timestep 801 for 0.8: the 50 timesteps are 1, 21, ..., 981), and then
``decode(z_noised, c, t_start=t_enc)``, which denoises from the entry below it (781) for ``t_enc`` steps. So the
first step reads a latent noised one DDIM step further than the timestep it is told. diffusers' img2img and
depth2img pipelines noise at the first timestep they denoise (781), keeping sqrt(alpha_bar) = 0.208 of the init
latent against the authors' 0.191: about 9% more of the init image.

:class:`CompVisDDIMScheduler` is diffusers' :class:`~diffusers.DDIMScheduler` with only that changed: its
``add_noise``, which the pipelines call once, on the init latent, noises at the schedule's timestep one above
the one asked. Every denoising step is DDIM's own; ``tests/test_sampling.py`` checks a whole trajectory against
a re-implementation of the CompVis sampler on the same UNet.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler

#: the ways an init latent can be noised (Profile.init_noise): the authors' CompVis sampler, or diffusers'
INIT_NOISE = ("compvis", "diffusers")


class CompVisDDIMScheduler(DDIMScheduler):
    """DDIM that noises an img2img init latent as the CompVis ``DDIMSampler.stochastic_encode`` does: at the DDIM
    timestep one above the first one denoised (801 where diffusers noises at 781, for 50 steps at strength 0.8).

    At strength 1 there is no timestep above the first (the authors' index would run past their schedule); the
    latent is then noised at the last training timestep, which leaves almost nothing of it, as strength 1 means.
    """

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor) -> torch.Tensor:
        return super().add_noise(original_samples, noise, self.timestep_above(timesteps))

    def timestep_above(self, timesteps: torch.IntTensor) -> torch.IntTensor:
        """Each of ``timesteps`` (entries of the set schedule) replaced by the schedule's entry one step noisier."""
        if self.num_inference_steps is None:
            raise RuntimeError("set_timesteps must run before the init latent is noised")
        schedule = self.timesteps.to(timesteps.device)  # descending: the noisiest first
        index = (schedule[None, :] == timesteps.reshape(-1, 1)).int().argmax(dim=1)
        if not bool((schedule[index] == timesteps.reshape(-1)).all()):
            raise ValueError(f"timesteps {timesteps.tolist()} are not all in the schedule {schedule.tolist()}")
        last = torch.full_like(index, self.config.num_train_timesteps - 1)
        above = torch.where(index > 0, schedule[(index - 1).clamp(min=0)].to(last.dtype), last)
        return above.reshape(timesteps.shape).to(timesteps.dtype)


def scheduler_class(init_noise: str) -> type[DDIMScheduler]:
    """The DDIM scheduler that noises the init latent as ``init_noise`` says (one of :data:`INIT_NOISE`)."""
    if init_noise not in INIT_NOISE:
        raise ValueError(f"init_noise must be one of {', '.join(INIT_NOISE)}, got {init_noise!r}")
    return CompVisDDIMScheduler if init_noise == "compvis" else DDIMScheduler


def noising_timesteps(num_inference_steps: int, strength: float, init_noise: str) -> tuple[int, int]:
    """(the timestep the init latent is noised at, the first one denoised) for a DDIM schedule as Stable
    Diffusion's and the toy's ship it ("leading" spacing, offset 1): (801, 781) for the authors' 50 steps at 0.8."""
    scheduler = scheduler_class(init_noise)(num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading")
    scheduler.set_timesteps(num_inference_steps)
    first = scheduler.timesteps[num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps):][:1]
    noised = scheduler.timestep_above(first) if init_noise == "compvis" else first
    return int(noised), int(first)
