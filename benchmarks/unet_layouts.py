"""Compare toy UNet layouts at an equal training budget: how much each uses its caption, and what it costs.

    python benchmarks/unet_layouts.py                           # 1000 steps of 32 on the CPU, every layout
    python benchmarks/unet_layouts.py --device cuda --steps 3000 --batch-size 256 --out layouts.json

Each layout is :data:`recon.toy.zoo.build.UNET_LAYOUT` with a few keys overridden, trained by
:func:`recon.toy.zoo.train.train_unet` (the zoo's SD recipe: lr, caption dropout and seed) on the zoo's own
training scenes, encoded by the toy profile's zoo's VAE (its latent scaling measured again, as a build does) and
text tower, loaded by :mod:`recon.models` (``RECON_ZOO`` moves the zoo). Reported per layout: the held-out caption reliance (:func:`recon.toy.zoo.quality.caption_reliance`),
text-to-image judged by the zoo's CLIP (category and colour on 96 single-object scenes, as in the manifest), the
training time, and a forward pass of 120 latents on the CPU, where the book generates (one batch of 12 images
x 5 samples with classifier-free guidance).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from recon import models
from recon.book import quiet_libraries
from recon.profiles import get_profile
from recon.toy.zoo import __main__ as zoo_cli
from recon.toy.zoo import build, quality, train

_POOLED_CAPTION = dict(addition_embed_type="text", addition_embed_type_num_heads=4)
_ATTENTION_16 = dict(down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
#: name -> overrides of build.UNET_LAYOUT
LAYOUTS = {
    "attention 8x8": {},
    "attention 16x16": _ATTENTION_16,
    "attention 8x8, pooled caption": _POOLED_CAPTION,
    "attention 16x16, pooled caption": _ATTENTION_16 | _POOLED_CAPTION,
}


@torch.no_grad()
def forward_ms(unet, embeddings: torch.Tensor, batch: int = 120, repeats: int = 3) -> float:
    unet = unet.to("cpu")
    sample = torch.randn(batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    t = torch.full((batch,), 500)
    context = embeddings[:batch].cpu()
    unet(sample, t, encoder_hidden_states=context)
    start = time.perf_counter()
    for _ in range(repeats):
        unet(sample, t, encoder_hidden_states=context)
    return (time.perf_counter() - start) / repeats * 1000


class ZooInputs:
    """What a toy SD UNet trains and is judged on, as the zoo build prepares it: the shipped zoo's VAE (its latent
    scaling measured again on the training scenes, in this process's copy) and text tower, the zoo's training and
    held-out scenes encoded by them, and the CLIP judge."""

    def __init__(self, n_train: int):
        self.profile = get_profile("toy")  # the models load on the CPU; the UNets train where the caller says
        shipped = models.img2img(self.profile)
        self.vae, self.text_encoder, self.tokenizer = shipped.vae, shipped.text_encoder, shipped.tokenizer
        clip, clip_processor = models.clip(self.profile)
        self.judge = quality.AttributeJudge(clip, self.tokenizer, clip_processor.image_processor)
        n_held = zoo_cli.RECIPES["scenes"]["n_held_out"]
        self.data, self.held = train.SceneData.draw(n_train + n_held, 0, build.IMAGE_SIZE).split(n_train)
        data = self.data
        self.scaling = train.set_latent_scaling(self.vae, data)
        encoded = train.encode_for_diffusion(self.vae, self.text_encoder, self.tokenizer, data)
        self.latents, self.embeddings = encoded[:2], encoded[2]
        self.held_latents, _, self.held_embeddings = train.encode_for_diffusion(self.vae, self.text_encoder,
                                                                                self.tokenizer, self.held)

    def caption_reliance(self, unet) -> dict:
        return quality.caption_reliance(unet, build.scheduler(), self.held_latents, self.held_embeddings,
                                        train.CAPTIONS_PER_SCENE)

    def pipeline(self, unet):
        pipe = build.img2img_pipeline(self.vae, self.text_encoder, self.tokenizer, unet)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def run(layouts: list[str], steps: int, batch_size: int, n_train: int, device: str) -> dict:
    inputs = ZooInputs(n_train)
    single = quality.single_object_rows(inputs.held)
    recipe = zoo_cli.RECIPES["unet"] | {"steps": steps, "batch_size": batch_size}
    results = {}
    for name in layouts:
        unet = build.unet(2, **LAYOUTS[name]).to(device)
        stats = train.train_unet(unet, build.scheduler(), inputs.latents, inputs.embeddings, seed=2,
                                 progress=False, desc=name, **recipe)
        unet.to("cpu")
        results[name] = {
            "overrides": LAYOUTS[name],
            "parameters": sum(p.numel() for p in unet.parameters()),
            "train_seconds": stats["train_seconds"], "final_loss": stats["final_loss"],
            "caption_reliance": inputs.caption_reliance(unet),
            "text_to_image_judged_by_clip": quality.generation_attributes(inputs.pipeline(unet), inputs.judge,
                                                                          inputs.held, single),
            "cpu_forward_ms_120": round(forward_ms(unet, inputs.embeddings), 1),
        }
        print(name, json.dumps(results[name]), flush=True)
    return {"meta": {"zoo": inputs.profile.models.sd, "device": device, "recipe": recipe, "n_train": n_train,
                     "latent_scaling": round(inputs.scaling, 5), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "machine": platform.machine()},
            "layouts": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=zoo_cli.RECIPES["scenes"]["n_train"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    quiet_libraries()
    report = run(args.layouts, args.steps, args.batch_size, args.n_train, args.device)
    print(f"{'layout':<34} {'gain':>7} {'category':>9} {'colour':>7} {'train s':>8} {'fwd ms':>7}")
    for name, r in report["layouts"].items():
        t2i = r["text_to_image_judged_by_clip"]
        print(f"{name:<34} {r['caption_reliance']['gain_over_other_caption']:>7.3f} {t2i['category']:>9.3f} "
              f"{t2i['colour']:>7.3f} {r['train_seconds']:>8.1f} {r['cpu_forward_ms_120']:>7.1f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
