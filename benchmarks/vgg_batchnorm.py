"""Does a better-trained VGG19 make a better +G? The zoo's VGG19 recipe with batch norm, folded away after.

    python benchmarks/vgg_batchnorm.py --out vgg_bn.json                 # the zoo's budget (3200 steps), ~11 min
    python benchmarks/vgg_batchnorm.py --steps 20 --n-train 200 --gan-n 8   # a smoke run

The zoo's VGG19 (:mod:`recon.toy.zoo.vgg`) is torchvision's plain layer stack, which +G and the loaders expect, and
16 plain conv layers train slowly: its top label names the object's category in about a quarter of held-out scenes.
Here the same stack is trained with a batch norm after each conv (``make_layers(..., batch_norm=True)``, the same
init, data, seed, steps and head as the zoo's recipe), and each batch norm is then folded into the conv before it
(:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`), which is exact in eval mode: the result is again a plain stack of
the zoo's layout, saved as the zoo saves its own. Reported: the held-out label quality of both stacks (the folded one
must equal the batch-norm one), and +G through the folded stack and through the zoo's, by ``gan_budget.py`` at the
profile's +G budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import vgg as tv_vgg

from recon import models
from recon.book import quiet_libraries
from recon.profiles import get_profile
from recon.toy.zoo import build, train, vgg
from recon.toy.zoo.__main__ import RECIPES

sys.path.insert(0, str(Path(__file__).parent))
import gan_budget  # noqa: E402  (a sibling script, not a package)


def fold_batch_norm(features: torch.nn.Sequential, width_divisor: int) -> torch.nn.Sequential:
    """The plain stack (the zoo's layout and layer indices) computing what ``features`` computes in eval mode."""
    layers = list(features.eval())
    folded = [fuse_conv_bn_eval(conv, bn) for conv, bn in zip(layers, layers[1:])
              if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d)]
    plain = tv_vgg.make_layers(vgg.layer_config(width_divisor), batch_norm=False)
    convs = [m for m in plain if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(folded):
        raise ValueError(f"{len(folded)} conv + batch norm pairs for a stack of {len(convs)} convs")
    with torch.no_grad():
        for conv, fused in zip(convs, folded):
            conv.weight.copy_(fused.weight)
            conv.bias.copy_(fused.bias)
    return plain.eval()


def run(steps: int, n_train: int, n_held: int, gan_n: int, out_folder: Path) -> dict:
    profile = get_profile("toy")
    manifest = models.zoo_manifest(profile)["models"]
    zoo_seed, vgg_seed = manifest["clip"]["seed"], manifest["vgg19"]["seed"]
    recipe = RECIPES["vgg19"] | {"steps": steps}
    data, held = train.SceneData.draw(n_train + n_held, zoo_seed, build.IMAGE_SIZE).split(n_train)
    features = vgg.narrowed_vgg19(profile.vgg_width_divisor, vgg_seed, batch_norm=True)
    head = vgg.label_head(features)
    stats = vgg.train_vgg19(features, data, seed=vgg_seed, head=head, progress=False, **recipe)
    plain = fold_batch_norm(features, profile.vgg_width_divisor)
    probe = torch.rand(4, 3, build.IMAGE_SIZE, build.IMAGE_SIZE)
    with torch.no_grad():
        gap = float((features(probe) - plain(probe)).abs().max())
    result = {"recipe": recipe, "n_train": n_train, "training": stats, "fold_max_abs_difference": gap,
              "held_out": {"batch norm": vgg.quality(features, head, held), "folded": vgg.quality(plain, head, held)},
              "zoo_held_out": manifest["vgg19"]["quality"]["held_out_labels"]}
    print(json.dumps(result), flush=True)
    vgg.save_vgg19(plain, out_folder, width_divisor=profile.vgg_width_divisor, input_size=build.IMAGE_SIZE)
    budget = [(profile.generator_steps, profile.generator_lr)]
    result["gan"] = {"zoo": gan_budget.run(budget, gan_n, 300, None)["rows"],
                     "batch norm, folded": gan_budget.run(budget, gan_n, 300, str(out_folder / vgg.WEIGHTS))["rows"]}
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=RECIPES["vgg19"]["steps"])
    parser.add_argument("--n-train", type=int, default=RECIPES["scenes"]["n_train"])
    parser.add_argument("--n-held-out", type=int, default=RECIPES["scenes"]["n_held_out"])
    parser.add_argument("--gan-n", type=int, default=60, help="probe scenes +G recovers (default: %(default)s)")
    parser.add_argument("--model-out", type=Path, default=Path("vgg19-batchnorm-folded"),
                        help="where the folded stack is saved (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()
    start = time.perf_counter()
    result = run(args.steps, args.n_train, args.n_held_out, args.gan_n, args.model_out)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result["gan"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
