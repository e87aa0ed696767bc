"""Issue 33's levers on the toy generator, each trained alone at the zoo's CPU budget and judged as the manifest judges.

    python benchmarks/generator_levers.py                                 # every lever, 2 CPU cores (about 2 hours)
    python benchmarks/generator_levers.py --levers "EMA of the weights (0.999)" --out ema.json
    python benchmarks/generator_levers.py --levers "wider UNet (64, 128 channels)" --into measured/generator_levers-toy-2026-12-04.json
    python benchmarks/generator_levers.py --forward-costs --into measured/generator_levers-toy-2026-12-04.json

Two families, each beside the shipped zoo's model, which is the recipe without the lever:

- **VAE levers** change :func:`recon.toy.zoo.build.vae` or the zoo's ``RECIPES["vae"]`` (2400 steps of 16, seed
  1) in one respect and train a fresh VAE on the zoo's training scenes. Judged: held-out PSNR and the CLIP judge's
  category and colour on round trips of the quality probe's 400 single-object scenes (the ceiling of every image
  a pipeline decodes). A new VAE would need new UNets before text-to-image can be judged, so that is not measured.
- **UNet levers** change :func:`recon.toy.zoo.build.unet`, its scheduler's prediction type or the zoo's
  ``RECIPES["unet"]`` (2200 steps of 32, seed 2) in one respect and train a fresh SD UNet on the shipped zoo's VAE
  and text tower (``benchmarks/unet_layouts.py``'s ``ZooInputs``). Judged at the methods' guidance scale (5, the
  authors'), 20 DDIM steps: text-to-image from each probe scene's first caption, and img2img at strength 0.8 from
  its own image and caption (the probe's oracle [30]), named by the zoo's CLIP; the held-out noise-prediction gain
  of the own caption over another scene's (the manifest's caption reliance); and how much text-to-image moves when
  the caption is swapped for another scene's, over how much a new seed moves it. ``--forward-costs`` adds what
  each UNet lever costs the book: one evaluation of the toy profile's generation batch, on one thread.

The judge's CLIP and the VGG19 of the perceptual loss are the shipped zoo's (``RECON_ZOO`` moves it); neither
AlexNet, Inception-v3 nor CLIP, Table 1's instruments, enters a training loss. Earlier measurements of related
levers are cited, not rerun: the budgets and layouts of the 2026-11-26 zoo (``benchmarks/unet_layouts.py``; its
cross-attention at 16 x 16 and pooled caption are rerun here on the shipped zoo), Min-SNR weighting and budgets (``benchmarks/unet_budget.py``), VAE widths and
budgets (``benchmarks/vae_recipes.py``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from unet_layouts import ZooInputs

from recon import models
from recon.book import quiet_libraries
from recon.config import REPO_ROOT
from recon.toy.zoo import __main__ as zoo_cli
from recon.toy.zoo import build, quality, train

#: LPIPS's VGG layers as far as the narrowed VGG19 reaches at 64 px: relu1_2, relu2_2, relu3_4, relu4_4 (the zoo's recipe)
PERCEPTUAL_LAYERS = tuple(zoo_cli.RECIPES["vae"]["perceptual_layers"])
#: name -> (overrides of build.VAE_LAYOUT, overrides of RECIPES["vae"]). The zoo adopted the perceptual loss on
#: 2026-12-04 (RECIPES["vae"] has it since), so that lever is now the recipe itself: the measurement of 2026-12-03/04
#: was taken against the pixel-loss zoo, which its meta's vae_recipe records
VAE_LEVERS = {
    "perceptual loss (zoo VGG19, weight 1)": ({}, {"perceptual_weight": 1.0, "perceptual_layers": list(PERCEPTUAL_LAYERS)}),
    "8 latent channels": ({"latent_channels": 8}, {}),
}
#: name -> (overrides of build.UNET_LAYOUT, overrides of RECIPES["unet"], the scheduler's prediction type)
UNET_LEVERS = {
    "EMA of the weights (0.999)": ({}, {"ema_decay": 0.999}, "epsilon"),
    "pooled caption in the time embedding": (dict(addition_embed_type="text", addition_embed_type_num_heads=4), {},
                                             "epsilon"),
    "v-prediction": ({}, {}, "v_prediction"),
    # structure: twice the channels at both levels (4 times the parameters), and cross-attention (with
    # self-attention) at 16 x 16 as well as 8 x 8, where the object's shape is drawn
    "wider UNet (64, 128 channels)": (dict(block_out_channels=(64, 128)), {}, "epsilon"),
    "cross-attention at 16 x 16 too": (dict(down_block_types=("CrossAttnDownBlock2D",) * 2,
                                            up_block_types=("CrossAttnUpBlock2D",) * 2), {}, "epsilon"),
}


#: name -> (a VAE lever, a UNet lever or None): the VAE trained with its lever, then a UNet by the zoo's SD recipe
#: (with its lever) on that VAE's latents, judged in a pipeline with that VAE: what the levers give together
COMBINED = {
    "perceptual VAE, then the zoo's UNet recipe": ("perceptual loss (zoo VGG19, weight 1)", None),
    "perceptual VAE, then the wider UNet": ("perceptual loss (zoo VGG19, weight 1)", "wider UNet (64, 128 channels)"),
}


def probe_scenes() -> train.SceneData:
    """The zoo manifest's quality probe: 400 single-object scenes of a stream no zoo model trained on."""
    return train.SceneData.draw(zoo_cli.RECIPES["scenes"]["n_quality"], 0, build.IMAGE_SIZE, single_object=True,
                                stream=train.QUALITY_STREAM)


def judge_vae(vae, inputs: ZooInputs, probe: train.SceneData) -> dict:
    vae = vae.to("cpu").eval()
    return {"psnr_db": quality.vae_error(vae, inputs.held)["psnr_db"],
            "round_trips_judged_by_clip": quality.reconstruction_attributes(vae, inputs.judge, probe,
                                                                            np.arange(len(probe)))}


def judge_unet(unet, inputs: ZooInputs, probe: train.SceneData, prediction: str = "epsilon", *, vae=None,
               held: tuple | None = None) -> dict:
    """The UNet in the zoo's img2img pipeline, whose scheduler samples by the UNet's prediction type; ``vae`` and
    its encoding of the held-out scenes (``held``: latents, embeddings) replace the shipped zoo's."""
    unet = unet.to("cpu").eval()
    pipe = inputs.pipeline(unet)
    if vae is not None:
        pipe.vae = vae.to("cpu").eval()
    pipe.scheduler = build.scheduler(prediction)
    held_latents, held_embeddings = held or (inputs.held_latents, inputs.held_embeddings)
    rows = np.arange(len(probe))
    return {"text_to_image_judged_by_clip": quality.generation_attributes(pipe, inputs.judge, probe, rows),
            **quality.at_methods_guidance(pipe, inputs.judge, probe, rows),
            "caption_reliance": quality.caption_reliance(unet, pipe.scheduler, held_latents, held_embeddings,
                                                         train.CAPTIONS_PER_SCENE)}


@torch.inference_mode()
def forward_ms(layout: dict, batch: int = 128, repeats: int = 5) -> float:
    """Milliseconds of one UNet evaluation of ``layout`` (random weights: the cost does not depend on them) at the
    toy profile's generation batch of 64 images, doubled by classifier-free guidance: what each of the book's
    denoising steps pays, on this process's threads."""
    unet = build.unet(2, **layout)
    side = unet.config.sample_size
    sample, t = torch.randn(batch, unet.config.in_channels, side, side), torch.full((batch,), 500)
    context = torch.randn(batch, build.TEXT_LENGTH, build.TEXT_WIDTH)
    unet(sample, t, encoder_hidden_states=context)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        unet(sample, t, encoder_hidden_states=context)
    return round((time.perf_counter() - start) / repeats * 1000, 1)


def add_forward_costs(measurement: dict) -> None:
    """Each UNet row's (and the shipped UNet's) generation cost, :func:`forward_ms`, measured now, one after
    another in this process, on one thread as the book's compute jobs run (the toy profile's compute_threads)."""
    torch.set_num_threads(1)
    for name, row in measurement["UNet"].items():
        row["forward_ms_128"] = forward_ms({} if name == "shipped" else UNET_LEVERS[name][0])
        print(f"{name}: {row['forward_ms_128']} ms per UNet evaluation of 128 latents", flush=True)
    measurement["meta"]["forward_costs"] = {"date": date.today().isoformat(), "cpu": _cpu_name()}


def train_vae_lever(name: str, inputs: ZooInputs, vgg19, device: str):
    layout, overrides = VAE_LEVERS[name]
    vae = build.vae(1, **layout).to(device)
    stats = train.train_vae(vae, inputs.data, seed=1, progress=False, vgg19=vgg19,
                            **(zoo_cli.RECIPES["vae"] | overrides))
    return vae, stats, layout, overrides


def train_unet_lever(name: str | None, latents, embeddings, device: str):
    layout, overrides, prediction = UNET_LEVERS[name] if name else ({}, {}, "epsilon")
    unet = build.unet(2, **layout).to(device)
    stats = train.train_unet(unet, build.scheduler(prediction), latents, embeddings, seed=2, progress=False,
                             desc=name or "zoo recipe", **(zoo_cli.RECIPES["unet"] | overrides))
    return unet, stats, layout, overrides, prediction


def run(levers: list[str], device: str, shipped: bool = True) -> dict:
    inputs = ZooInputs(zoo_cli.RECIPES["scenes"]["n_train"])
    probe = probe_scenes()
    results = {"VAE": {}, "UNet": {}}
    start = time.perf_counter()
    if shipped:  # the recipe without the levers: the zoo as shipped
        manifest = models.zoo_manifest(inputs.profile)["models"]["sd-img2img"]
        shipped_unet = models.img2img(inputs.profile).unet
        results["VAE"]["shipped"] = judge_vae(inputs.vae, inputs, probe) | {
            "train_seconds": manifest["training"]["vae"]["train_seconds"]}
        results["UNet"]["shipped"] = judge_unet(shipped_unet, inputs, probe) | {
            "train_seconds": manifest["training"]["train_seconds"]}
        print("shipped", json.dumps(results["VAE"]["shipped"]), json.dumps(results["UNet"]["shipped"]),
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    vgg19 = models.vgg19_features(inputs.profile)  # the perceptual loss's network
    for name in levers:
        if name in VAE_LEVERS:
            vae, stats, layout, overrides = train_vae_lever(name, inputs, vgg19, device)
            results["VAE"][name] = judge_vae(vae, inputs, probe) | {
                "layout": layout, "recipe": overrides, "train_seconds": stats["train_seconds"],
                "final_loss": stats["final_loss"], "parameters": sum(p.numel() for p in vae.parameters())}
            print(name, json.dumps(results["VAE"][name]), flush=True)
        elif name in COMBINED:
            vae_lever, unet_lever = COMBINED[name]
            vae, vae_stats, _, _ = train_vae_lever(vae_lever, inputs, vgg19, device)
            vae = vae.to("cpu").eval()
            mean, sd, embeddings = train.encode_for_diffusion(vae, inputs.text_encoder, inputs.tokenizer, inputs.data)
            held_latents, _, held_embeddings = train.encode_for_diffusion(vae, inputs.text_encoder, inputs.tokenizer,
                                                                          inputs.held)
            unet, stats, _, _, prediction = train_unet_lever(unet_lever, (mean, sd), embeddings, device)
            results.setdefault("combined", {})[name] = judge_unet(
                unet, inputs, probe, prediction, vae=vae, held=(held_latents, held_embeddings)) | judge_vae(
                vae, inputs, probe) | {"levers": [vae_lever, unet_lever],
                                       "train_seconds": round(vae_stats["train_seconds"] + stats["train_seconds"], 1)}
            print(name, json.dumps(results["combined"][name]), flush=True)
        else:
            unet, stats, layout, overrides, prediction = train_unet_lever(name, inputs.latents, inputs.embeddings,
                                                                          device)
            results["UNet"][name] = judge_unet(unet, inputs, probe, prediction)
            results["UNet"][name] |= {"layout": layout, "recipe": overrides, "prediction_type": prediction,
                                      "train_seconds": stats["train_seconds"], "final_loss": stats["final_loss"],
                                      "parameters": sum(p.numel() for p in unet.parameters())}
            print(name, json.dumps(results["UNet"][name]), flush=True)
    zoo = Path(inputs.profile.models.sd)
    return {"meta": {"date": date.today().isoformat(), "device": device,
                     "zoo": str(zoo.relative_to(REPO_ROOT)) if zoo.is_relative_to(REPO_ROOT) else str(zoo),
                     "vae_recipe": zoo_cli.RECIPES["vae"], "unet_recipe": zoo_cli.RECIPES["unet"],
                     "perceptual_layers": PERCEPTUAL_LAYERS, "n_probe": len(probe), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "machine": platform.machine(),
                     "cpu": _cpu_name(),
                     "seconds": round(time.perf_counter() - start)},
            **results}


def _cpu_name() -> str:
    """The CPU's model name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {torch.get_num_threads()} threads"
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", nargs="+", choices=list(VAE_LEVERS) + list(UNET_LEVERS) + list(COMBINED),
                        default=list(VAE_LEVERS) + list(UNET_LEVERS))
    parser.add_argument("--into", type=Path, help="add the levers' rows to this earlier measurement (its shipped "
                                                   "rows and meta kept; the runs are listed under meta.added)")
    parser.add_argument("--forward-costs", action="store_true",
                        help="only add each UNet row's cost of one evaluation (forward_ms) to --into")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    quiet_libraries()
    if args.forward_costs:
        if args.into is None:
            parser.error("--forward-costs adds to an earlier measurement: give it with --into")
        result = json.loads(args.into.read_text())
        add_forward_costs(result)
        args.into.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.into}")
        return
    result = run(args.levers, args.device, shipped=args.into is None)
    if args.into:
        earlier = json.loads(args.into.read_text())
        for family in ("VAE", "UNet", "combined"):
            earlier.setdefault(family, {}).update({k: v for k, v in result.get(family, {}).items() if k != "shipped"})
        earlier["meta"].setdefault("added", []).append({"levers": args.levers, **result["meta"]})
        result = earlier
    out = args.out or args.into or Path(__file__).parent / "measured" / f"generator_levers-toy-{result['meta']['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
