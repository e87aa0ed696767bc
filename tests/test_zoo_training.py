"""The zoo's training recipes: they run, are deterministic, and the manifest records them."""

import json
import shutil

import numpy as np
import pytest
import torch

from recon.toy import scenes as world
from recon.toy.zoo import __main__ as zoo_cli
from recon.toy.zoo import build, train

TINY = {"scenes": dict(n_train=64, n_held_out=24, n_quality=12), "vision_scenes": dict(n_train=16)} | {
    name: dict(steps=2, batch_size=8) for name in (
        "clip_vision", "clip", "clip_sd2", "vae", "unet", "unet_sd2", "unet_depth", "blip_vision", "blip", "dpt", "vgg19")
}


@pytest.fixture(scope="module")
def scenes():
    return train.SceneData.draw(32, seed=0, size=build.IMAGE_SIZE)


@pytest.fixture(scope="module")
def finished_build(tmp_path_factory):
    """One finished TINY trained build: its folder ``zoo``, its staging folder beside it and its manifest, built
    once for the module (a whole build is most of these tests' time). Tests that change a build work on a copy
    (:func:`copy_of`)."""
    root = tmp_path_factory.mktemp("finished")
    manifest = zoo_cli.build_zoo(root / "zoo", seed=0, trained=True, recipes=TINY, progress=False)
    return root, manifest


def copy_of(finished_build, tmp_path):
    """The finished build's zoo and staging folders copied into ``tmp_path``: the zoo folder and its manifest."""
    root, manifest = finished_build
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    return tmp_path / "zoo", manifest


def test_scene_data_is_deterministic_and_not_the_simulator_stream(scenes):
    again = train.SceneData.draw(32, seed=0, size=build.IMAGE_SIZE)
    np.testing.assert_array_equal(scenes.images, again.images)
    assert scenes.images.shape == (32, 64, 64, 3) and scenes.depth.shape == (32, 64, 64)
    assert len(scenes.captions[0]) == train.CAPTIONS_PER_SCENE


def test_training_pixels_match_the_saved_processors(scenes, tmp_path):
    tokenizer = build.write_clip_vocabulary(tmp_path / "clip")
    for processor in (build.clip_processor(tokenizer).image_processor, build.dpt_processor(),
                      build.blip_processor(build.write_bert_vocabulary(tmp_path / "bert")).image_processor):
        train.check_pixels(scenes.images, processor)  # raises if they disagree


def test_a_recipe_is_deterministic(scenes, tmp_path):
    tokenizer = build.write_clip_vocabulary(tmp_path / "clip")
    processor = build.clip_processor(tokenizer).image_processor
    states = []
    for _ in range(2):
        model = build.clip_model(len(tokenizer), seed=3)
        train.train_clip(model, tokenizer, processor, scenes, steps=3, batch_size=8, lr=1e-3, seed=3, progress=False)
        states.append(model.state_dict())
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name


def test_depth_conditioning_matches_the_pipeline_convention(scenes):
    d = train.latent_depth(scenes.depth, 16)
    assert d.shape == (32, 1, 16, 16)
    np.testing.assert_allclose(d.amin(dim=(1, 2, 3)), -1, atol=1e-6)
    np.testing.assert_allclose(d.amax(dim=(1, 2, 3)), 1, atol=1e-6)


def test_trained_build_writes_every_model_with_recipe_and_quality(finished_build):
    root, manifest = finished_build
    on_disk = json.loads((root / "zoo" / "manifest.json").read_text())
    assert on_disk["models"].keys() == manifest["models"].keys() == {
        "clip", "sd-img2img", "sd2-img2img", "dpt", "sd-depth2img", "blip", "vgg19"}
    for name, entry in on_disk["models"].items():
        assert entry["steps"] == 2 and entry["train_seconds"] >= 0 and entry["recipe"].startswith(("recon.toy.zoo", "as ", "train_"))
        assert entry["quality"], name
        assert any(f.endswith(".safetensors") for f in entry["files"])
    assert -1 <= on_disk["models"]["dpt"]["quality"]["mean_pixel_r"] <= 1
    assert set(on_disk["models"]["blip"]["quality"]["caption_attributes"]) >= {"colour", "category"}
    assert on_disk["trained"] is True and on_disk["recipes"]["unet"]["steps"] == 2
    assert on_disk["built_with"]["device"] == "cpu" and set(on_disk["stage_devices"].values()) == {"cpu"}
    assert set(on_disk["stage_devices"]) == set(on_disk["stage_seconds"])
    reconstructions = on_disk["models"]["sd-img2img"]["quality"]["vae"]["judge_on_reconstructions"]
    assert set(reconstructions) == {"colour", "category", "n"} and 0 <= reconstructions["category"] <= 1
    attribute_checks = [on_disk["models"]["clip"]["quality"]["judge_on_true_images"], reconstructions,
                        on_disk["models"]["blip"]["quality"]["caption_attributes"],
                        on_disk["models"]["sd-img2img"]["quality"]["text_to_image_judged_by_clip"],
                        on_disk["models"]["sd-depth2img"]["quality"]["text_and_depth_to_image_judged_by_clip"]]
    assert [check["n"] for check in attribute_checks] == [TINY["scenes"]["n_quality"]] * 5  # the probe's scenes
    for name in ("sd-img2img", "sd2-img2img"):  # at the methods' guidance: img2img from the true z, and a caption swap
        img2img = on_disk["models"][name]["quality"]["img2img_true_z_and_caption_judged_by_clip"]
        assert img2img["n"] == TINY["scenes"]["n_quality"] and img2img["strength"] == 0.8 and img2img["guidance"] == 5
        assert on_disk["models"][name]["quality"]["caption_swap_at_guidance_5"]["pixel_change_by_seed"] > 0
    for name in ("sd-img2img", "sd2-img2img", "sd-depth2img"):  # each UNet's held-out use of its caption
        reliance = on_disk["models"][name]["quality"]["caption_reliance"]
        assert reliance["n"] == TINY["scenes"]["n_held_out"] and reliance["mse_own_caption"] > 0, name
    scaling = on_disk["models"]["sd-img2img"]["training"]["vae"]["scaling_factor"]
    for name in ("sd-img2img", "sd2-img2img", "sd-depth2img"):  # the latent scaling the VAE's training measured
        vae_config = json.loads((root / "zoo" / name / "vae" / "config.json").read_text())
        assert vae_config["scaling_factor"] == pytest.approx(scaling, abs=1e-5) and scaling != 1.0, name
    vae_training = on_disk["models"]["sd-img2img"]["training"]["vae"]  # with the perceptual loss on the zoo's VGG19
    assert vae_training["perceptual_weight"] == zoo_cli.RECIPES["vae"]["perceptual_weight"] > 0
    assert vae_training["perceptual_layers"] == list(zoo_cli.RECIPES["vae"]["perceptual_layers"])
    for name in ("clip", "blip"):  # each vision tower first learned to classify single-object scenes
        assert on_disk["models"][name]["training"]["vision_pretraining"]["steps"] == 2
        assert on_disk["models"][name]["recipe"].startswith("recon.toy.zoo.train.pretrain_vision")


def stop_at_dpt(zoo_dir, monkeypatch):
    """A trained build stopped as it starts the DPT stage (as at the end of a session): its staging folder."""

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train, "train_dpt", killed)
        with pytest.raises(KeyboardInterrupt):
            zoo_cli.build_zoo(zoo_dir, seed=0, trained=True, recipes=TINY, progress=False)
    assert not zoo_dir.exists()
    (partial,) = zoo_dir.parent.glob(f".{zoo_dir.name}-partial-*")
    return partial


def record_training(monkeypatch) -> list[str]:
    """The training functions called from now on, in order."""
    called = []
    for name in ("pretrain_vision", "train_clip", "train_blip", "train_vae", "train_unet", "train_dpt"):
        original = getattr(train, name)
        monkeypatch.setattr(train, name, lambda *a, _f=original, _n=name, **k: called.append(_n) or _f(*a, **k))
    return called


def test_a_stopped_trained_build_resumes_where_it_stopped_and_writes_the_same_files(finished_build, tmp_path,
                                                                                     monkeypatch):
    whole = finished_build[1]
    partial = stop_at_dpt(tmp_path / "zoo", monkeypatch)
    (partial / "dpt").mkdir(exist_ok=True)  # a folder whose stage left no record is redone, not read back
    (partial / "dpt" / "config.json").write_text("{")

    retrained = record_training(monkeypatch)
    resumed = zoo_cli.build_zoo(tmp_path / "zoo", seed=0, trained=True, recipes=TINY, progress=False)

    assert resumed["resumed_stages"] == ["clip", "blip", "vgg19", "_vae", "sd-img2img", "sd2-img2img"]
    assert retrained == ["train_dpt", "train_unet"]  # the depth model and its UNet only
    assert partial.exists() and not list((tmp_path / "zoo").glob("_*"))  # published as a copy, the stages kept
    for name, entry in whole["models"].items():
        assert resumed["models"][name]["files"] == entry["files"], name
        assert resumed["models"][name]["quality"] == entry["quality"], name
    assert resumed["build_seconds"] >= sum(resumed["stage_seconds"][n] for n in resumed["resumed_stages"])


def test_a_stage_is_kept_unless_its_recipes_or_those_it_builds_on_change():
    keys = zoo_cli.stage_keys(0, zoo_cli.RECIPES)
    assert set(keys) == set(zoo_cli.TRAINED_STAGES) and len(set(keys.values())) == len(keys)
    # every recipe is read, so keyed, by some stage
    assert {r for reads, _ in zoo_cli.TRAINED_STAGES.values() for r in reads} == set(zoo_cli.RECIPES)

    def changed(recipe):
        other = zoo_cli.RECIPES | {recipe: zoo_cli.RECIPES[recipe] | {"steps": 1}}
        return {name for name, key in zoo_cli.stage_keys(0, other).items() if key != keys[name]}

    assert changed("unet") == {"sd-img2img"}
    assert changed("unet_sd2") == {"sd2-img2img", "sd-depth2img"}
    assert changed("vae") == {"_vae", "sd-img2img", "sd2-img2img", "sd-depth2img"}
    assert changed("clip") == {"clip", "sd-img2img", "sd2-img2img", "sd-depth2img"}
    assert changed("blip") == {"blip"}
    # the VAE's perceptual loss runs on the VGG19, so everything on the VAE's latents builds on it
    assert changed("vgg19") == {"vgg19", "_vae", "sd-img2img", "sd2-img2img", "sd-depth2img"}
    assert zoo_cli.stage_keys(1, zoo_cli.RECIPES)["vgg19"] != keys["vgg19"]  # the seed too


def stopped_copy(finished_build, tmp_path, stage):
    """A copy of the finished build as a build stopped when it reached ``stage`` would leave it: not published,
    no record of ``stage`` or of the stages after it (their folders, without a record, are redone)."""
    zoo_dir, _ = copy_of(finished_build, tmp_path)
    shutil.rmtree(zoo_dir)
    (staging,) = tmp_path.glob(".zoo-partial-*")
    order = list(zoo_cli.TRAINED_STAGES)
    for name in order[order.index(stage):]:
        (staging / "_stages" / f"{name}.json").unlink()
    return zoo_dir


def test_a_build_resumed_with_a_new_unet_budget_retrains_only_what_reads_it(finished_build, tmp_path, monkeypatch):
    stopped_copy(finished_build, tmp_path, "dpt")
    retrained = record_training(monkeypatch)
    more = TINY | {"unet": TINY["unet"] | {"steps": 3}}
    resumed = zoo_cli.build_zoo(tmp_path / "zoo", seed=0, trained=True, recipes=more, progress=False)
    assert resumed["resumed_stages"] == ["clip", "blip", "vgg19", "_vae", "sd2-img2img"]
    assert retrained == ["train_unet", "train_dpt", "train_unet"]  # SD's UNet, then the stages never finished
    assert resumed["models"]["sd-img2img"]["training"]["steps"] == 3


def test_a_finished_build_rebuilt_with_a_new_unet_budget_retrains_only_what_reads_it(finished_build, tmp_path,
                                                                                     monkeypatch):
    zoo_dir, first = copy_of(finished_build, tmp_path)
    retrained = record_training(monkeypatch)
    more = TINY | {"unet": TINY["unet"] | {"steps": 3}}
    rebuilt = zoo_cli.build_zoo(zoo_dir, seed=0, trained=True, recipes=more, progress=False)
    assert retrained == ["train_unet"] and rebuilt["models"]["sd-img2img"]["training"]["steps"] == 3
    assert rebuilt["resumed_stages"] == [n for n in zoo_cli.TRAINED_STAGES if n != "sd-img2img"]
    for name, entry in first["models"].items():
        assert (rebuilt["models"][name]["files"] == entry["files"]) == (name != "sd-img2img"), name


def test_a_stage_stopped_while_retraining_is_never_read_back(finished_build, tmp_path, monkeypatch):
    """Its folder is half overwritten, so its old record goes first: going back to the old recipe retrains it."""
    zoo_dir, first = copy_of(finished_build, tmp_path)
    more = TINY | {"dpt": TINY["dpt"] | {"steps": 3}}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train, "train_dpt", killed)
        with pytest.raises(KeyboardInterrupt):
            zoo_cli.build_zoo(tmp_path / "zoo", seed=0, trained=True, recipes=more, progress=False)
    retrained = record_training(monkeypatch)
    again = zoo_cli.build_zoo(tmp_path / "zoo", seed=0, trained=True, recipes=TINY, progress=False)
    assert "dpt" not in again["resumed_stages"] and retrained == ["train_dpt"]
    assert again["models"]["dpt"]["files"] == first["models"]["dpt"]["files"]


def test_single_object_scenes_are_their_own_stream(scenes):
    objects = train.SceneData.draw(8, seed=0, size=build.IMAGE_SIZE, single_object=True)
    assert all(len(s.objects) == 1 for s in objects.scenes)
    again = train.SceneData.draw(8, seed=0, size=build.IMAGE_SIZE, single_object=True)
    np.testing.assert_array_equal(objects.images, again.images)
    assert not np.array_equal(objects.images, scenes.images[:8])
    probe = train.SceneData.draw(8, seed=0, size=build.IMAGE_SIZE, single_object=True, stream=train.QUALITY_STREAM)
    assert all(len(s.objects) == 1 for s in probe.scenes)
    assert not np.array_equal(probe.images, objects.images)  # the quality probe is no vision tower's training data


def test_judge_prompts_are_the_worlds_own_captions_of_one_object():
    """The judge's prompts for a label are the captions the grammar writes for that single object: the three of
    its five that name no position (the third and fifth do), over every noun, size and place."""
    objects = train.SceneData.draw(40, seed=3, size=build.IMAGE_SIZE, single_object=True)
    for scene, written in zip(objects.scenes, objects.captions):
        obj = scene.objects[0]
        prompts = set(world.object_captions(obj.color, obj.category))
        assert {written[0], written[1], written[3]} <= prompts
        assert written[2] not in prompts and written[4] not in prompts
    others = set(world.object_captions("red", "box"))
    assert not others & set(world.object_captions("red", "ball")) and not others & set(world.object_captions("blue", "box"))
    assert len(world.object_captions("red", "ball")) == 2 * 3 * (3 * len(world.BACKGROUNDS) + 2)


def test_vision_pretraining_needs_single_object_scenes(scenes, tmp_path):
    processor = build.clip_processor(build.write_clip_vocabulary(tmp_path / "clip")).image_processor
    clip = build.clip_model(10, seed=0)
    if all(len(s.objects) == 1 for s in scenes.scenes):
        pytest.skip("the fixture drew only single-object scenes")
    with pytest.raises(ValueError, match="single-object"):
        train.pretrain_vision(clip.vision_model, processor, scenes, steps=1, batch_size=4, lr=1e-3, seed=0,
                              progress=False)


def test_vision_pretraining_trains_the_tower_in_place_and_is_deterministic(tmp_path):
    objects = train.SceneData.draw(32, seed=0, size=build.IMAGE_SIZE, single_object=True)
    tokenizer = build.write_clip_vocabulary(tmp_path / "clip")
    processor = build.clip_processor(tokenizer).image_processor
    runs = []
    for _ in range(2):
        clip = build.clip_model(len(tokenizer), seed=4)
        before = {k: v.clone() for k, v in clip.vision_model.state_dict().items()}
        stats = train.pretrain_vision(clip.vision_model, processor, objects, steps=30, batch_size=16, lr=3e-3, seed=4,
                                      progress=False)
        runs.append((before, clip.vision_model.state_dict(), stats))
    (before, after, stats), (_, again, _) = runs
    assert not clip.vision_model.training and stats["steps"] == 30
    assert not torch.equal(before["embeddings.patch_embedding.weight"], after["embeddings.patch_embedding.weight"])
    for name in after:
        assert torch.equal(after[name], again[name]), name
    # 30 steps on 32 scenes: the classes are being fitted (a uniform guess scores log 12 + log 8 + log 6)
    assert stats["final_loss"] < np.log(12 * 8 * 6)
    targets = train.label_indices(objects)
    assert set(targets) == {"category", "colour", "background"}
    assert [world.CATEGORIES[i] for i in targets["category"][:4]] == [s.objects[0].category for s in objects.scenes[:4]]


def test_vision_pretraining_reports_only_the_label_groups_it_trains(tmp_path):
    objects = train.SceneData.draw(16, seed=1, size=build.IMAGE_SIZE, single_object=True)
    tokenizer = build.write_clip_vocabulary(tmp_path / "clip")
    clip = build.clip_model(len(tokenizer), seed=1)
    stats = train.pretrain_vision(clip.vision_model, build.clip_processor(tokenizer).image_processor, objects,
                                  held=objects, steps=2, batch_size=8, lr=1e-3, seed=1, progress=False,
                                  weights={"background": 0.0})
    assert stats["weights"] == {"category": 1.0, "colour": 1.0, "background": 0.0}
    assert set(stats["held_out_accuracy"]) == {"category", "colour", "n"}  # the background head was never trained
    assert stats["loss"].startswith("softmax CE on category and colour of")


def test_zoo_manifest_of_a_profile():
    from recon import models
    from recon.profiles import get_profile

    manifest = models.zoo_manifest(get_profile("toy"))
    assert {"clip", "sd-img2img", "blip", "dpt"} <= set(manifest["models"])
    with pytest.raises(ValueError, match="Hub models"):
        models.zoo_manifest(get_profile("nsd"))


def test_locked_vision_tower_is_left_as_it_was(scenes, tmp_path):
    tokenizer = build.write_clip_vocabulary(tmp_path / "clip")
    processor = build.clip_processor(tokenizer).image_processor
    clip = build.clip_model(len(tokenizer), seed=5)
    vision = {k: v.clone() for k, v in clip.vision_model.state_dict().items()}
    text = clip.text_model.embeddings.token_embedding.weight.clone()
    stats = train.train_clip(clip, tokenizer, processor, scenes, steps=3, batch_size=8, lr=1e-3, seed=5,
                             lock_vision=True, progress=False)
    assert stats["locked_vision"] is True
    for name, value in clip.vision_model.state_dict().items():
        assert torch.equal(value, vision[name]), name
    assert not torch.equal(clip.text_model.embeddings.token_embedding.weight, text)  # the text side learned


def test_gpu_budgets_apply_off_the_cpu_and_overrides_win():
    assert zoo_cli.recipes_for("cpu") == zoo_cli.RECIPES
    on_gpu = zoo_cli.recipes_for("cuda")
    for name, recipe in zoo_cli.RECIPES.items():
        assert on_gpu[name] == recipe | zoo_cli.GPU_BUDGETS.get(name, {}), name
    assert on_gpu["unet"]["batch_size"] > zoo_cli.RECIPES["unet"]["batch_size"]
    assert on_gpu["unet"]["lr"] == zoo_cli.RECIPES["unet"]["lr"]  # a budget changes only what it names
    assert zoo_cli.recipes_for("cuda", TINY)["unet"] | {"steps": 2} == zoo_cli.recipes_for("cuda", TINY)["unet"]
    assert zoo_cli.recipes_for("cuda", TINY)["unet"]["batch_size"] == 8


def test_gpu_budgets_never_train_less_than_the_cpu_recipes():
    """A budget merged over a recipe that has since grown would shrink it on the GPU (BLIP's did, 2026-11-27)."""
    for name, budget in zoo_cli.GPU_BUDGETS.items():
        recipe = zoo_cli.RECIPES[name]
        assert budget.get("steps", recipe["steps"]) >= recipe["steps"], name
        assert budget.get("steps", recipe["steps"]) * budget.get("batch_size", recipe["batch_size"]) \
            >= recipe["steps"] * recipe["batch_size"], name


def test_rendering_in_worker_processes_gives_the_same_scenes(monkeypatch):
    drawn = train.SceneData.draw(6, seed=2, size=32).scenes
    serial = train.render_all(drawn, 32)
    monkeypatch.setattr(train, "PARALLEL_RENDER_FROM", 2)
    parallel = train.render_all(drawn, 32)
    for (image, depth), (image2, depth2) in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(depth, depth2)


def test_vision_pretraining_refuses_weights_that_train_nothing_or_name_no_group(scenes, tmp_path):
    objects = train.SceneData.draw(8, seed=1, size=build.IMAGE_SIZE, single_object=True)
    tokenizer = build.write_clip_vocabulary(tmp_path / "clip")
    clip = build.clip_model(len(tokenizer), seed=1)
    processor = build.clip_processor(tokenizer).image_processor
    zero = {"category": 0.0, "colour": 0.0, "background": 0.0}
    with pytest.raises(ValueError, match="leave no label group to train"):
        train.pretrain_vision(clip.vision_model, processor, objects, steps=1, batch_size=4, lr=1e-3, seed=1,
                              progress=False, weights=zero)
    with pytest.raises(ValueError, match=r"unknown label groups \['backgroud'\]"):
        train.pretrain_vision(clip.vision_model, processor, objects, steps=1, batch_size=4, lr=1e-3, seed=1,
                              progress=False, weights={"backgroud": 0.0})


def test_caption_reliance_pairs_each_scene_with_its_own_caption():
    """A stand-in UNet that reads the clean latent out of the caption embedding predicts the noise exactly from
    the scene's own caption only; with another scene's or the empty one its error is large."""
    from types import SimpleNamespace

    from recon.toy.zoo import quality

    scheduler = build.scheduler()
    alphas = scheduler.alphas_cumprod

    def unet(noisy, t, encoder_hidden_states):
        a = alphas[t].view(-1, 1, 1, 1)
        clean = encoder_hidden_states[:, 0, :].reshape(-1, 4, 2, 2)
        return SimpleNamespace(sample=(noisy[:, :4] - a.sqrt() * clean) / (1 - a).sqrt())

    latents = torch.randn(6, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    per_scene = 2
    embeddings = torch.zeros(6 * per_scene + 1, 3, 16)  # the empty prompt last: a zero latent
    embeddings[: 6 * per_scene, 0] = latents.reshape(6, 1, 16).repeat(1, per_scene, 1).reshape(-1, 16)
    for depth in (None, torch.zeros(6, 1, 2, 2)):  # a depth channel is concatenated, and ignored here
        result = quality.caption_reliance(unet, scheduler, latents, embeddings, per_scene, depth=depth)
        assert result["mse_own_caption"] < 1e-6 < result["mse_other_caption"]
        assert result["mse_empty_caption"] > 1e-3 and result["gain_over_other_caption"] > 100
        assert result["n"] == 6 and result["timesteps"] == [200, 500, 800]
    ignored = quality.caption_reliance(lambda noisy, t, encoder_hidden_states: SimpleNamespace(sample=noisy * 0.5),
                                       scheduler, latents, embeddings, per_scene)
    assert ignored["gain_over_other_caption"] == 0 and ignored["mse_own_caption"] == ignored["mse_empty_caption"]


def test_min_snr_weighting_is_off_by_default_and_changes_only_what_it_caps():
    """A gamma above every SNR of the schedule weights each sample by 1: the same UNet as unweighted training.
    A gamma of 1 caps every timestep cleaner than t = 354 (SNR 1), so it trains another UNet, and the stats say so."""
    g = torch.Generator().manual_seed(0)
    latents = (torch.randn(8, 4, 16, 16, generator=g), torch.full((8, 4, 16, 16), 0.1))
    embeddings = torch.randn(8 * train.CAPTIONS_PER_SCENE + 1, build.TEXT_LENGTH, build.TEXT_WIDTH, generator=g)
    recipe = dict(steps=2, batch_size=4, lr=1e-3, uncond_prob=0.1, seed=2, progress=False)
    scheduler = build.scheduler()
    largest_snr = float(scheduler.alphas_cumprod[0] / (1 - scheduler.alphas_cumprod[0]))
    trained = {}
    for gamma in (None, 2 * largest_snr, 1.0):
        unet = build.unet(2)
        stats = train.train_unet(unet, scheduler, latents, embeddings, snr_gamma=gamma, **recipe)
        assert stats.get("snr_gamma") == gamma
        trained[gamma] = unet.state_dict()
    unweighted, uncapped, capped = trained.values()
    # weights of 1 (snr / snr) and a mean of per-sample means sum in another order than one mean: rounding only
    # (exactly equal on an AMD Zen 4; an Intel Xeon's kernels differ in the last bits)
    # (exactly equal on an AMD Zen 4; on an Intel Xeon, Adam's first step turns a few near-zero gradients' last
    # bits into steps of +-lr), so compare the mean change of a weight, against the change that capping makes
    def mean_change(other):
        return float(sum((unweighted[k] - other[k]).abs().sum() for k in unweighted) /
                     sum(v.numel() for v in unweighted.values()))

    changes = {"uncapped": mean_change(uncapped), "capped": mean_change(capped)}
    assert changes["uncapped"] < 1e-6 and changes["capped"] > 100 * max(changes["uncapped"], 1e-7), changes


def _narrow_vgg():
    from recon.toy.zoo import vgg

    return vgg.narrowed_vgg19(8, seed=0)


def test_perceptual_loss_is_zero_on_the_image_itself_and_grows_with_the_difference():
    loss = train.PerceptualLoss(_narrow_vgg(), ("3", "8", "17", "26"))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, build.IMAGE_SIZE, build.IMAGE_SIZE, generator=g) * 2 - 1
    noise = torch.randn(x.shape, generator=g)
    distances = [float(loss(x + scale * noise, x)) for scale in (0.0, 0.05, 0.3)]
    assert distances[0] == 0 and 0 < distances[1] < distances[2]
    reconstruction = (x + 0.1 * noise).requires_grad_(True)
    loss(reconstruction, x).backward()
    assert reconstruction.grad.abs().sum() > 0  # it trains what it is given
    assert not any(p.requires_grad for p in loss.features.parameters())  # and never the VGG19
    with pytest.raises(ValueError, match="layer 2 .* Conv2d, expected a ReLU"):
        train.PerceptualLoss(_narrow_vgg(), ("2",))


def test_the_perceptual_term_is_off_by_default_and_needs_its_network(scenes):
    recipe = dict(steps=2, batch_size=4, lr=1e-3, kl_weight=1e-6, seed=1, progress=False)
    trained = {}
    for name, extra in {"plain": {}, "weight 0": {"perceptual_weight": 0.0},
                        "perceptual": {"perceptual_weight": 1.0, "perceptual_layers": ("3", "8"),
                                       "vgg19": _narrow_vgg()}}.items():
        vae = build.vae(1)
        stats = train.train_vae(vae, scenes, **recipe, **extra)
        trained[name] = (vae.state_dict(), stats)
    (plain, plain_stats), (zero, _), (perceptual, stats) = trained.values()
    assert all(torch.equal(plain[k], zero[k]) for k in plain) and "perceptual_weight" not in plain_stats
    assert not all(torch.equal(plain[k], perceptual[k]) for k in plain)
    assert stats["perceptual_weight"] == 1.0 and stats["perceptual_layers"] == ["3", "8"]
    with pytest.raises(ValueError, match="needs a perceptual loss"):
        train.train_vae(build.vae(1), scenes, **recipe, perceptual_weight=1.0, perceptual_layers=("3",))
    with pytest.raises(ValueError, match="needs a perceptual loss"):
        train.train_vae(build.vae(1), scenes, **recipe, perceptual_weight=1.0, vgg19=_narrow_vgg())


def test_a_vae_may_have_more_latent_channels():
    vae = build.vae(1, latent_channels=8)
    z = vae.encode(torch.zeros(1, 3, build.IMAGE_SIZE, build.IMAGE_SIZE)).latent_dist.mean
    assert z.shape == (1, 8, build.IMAGE_SIZE // 4, build.IMAGE_SIZE // 4)
    assert build.vae(1).config.latent_channels == build.LATENT_CHANNELS


def _unet_inputs():
    g = torch.Generator().manual_seed(0)
    latents = (torch.randn(8, 4, 16, 16, generator=g), torch.full((8, 4, 16, 16), 0.1))
    embeddings = torch.randn(8 * train.CAPTIONS_PER_SCENE + 1, build.TEXT_LENGTH, build.TEXT_WIDTH, generator=g)
    return latents, embeddings, dict(steps=3, batch_size=4, lr=1e-3, uncond_prob=0.1, seed=2, progress=False)


def test_ema_leaves_the_unet_holding_the_average_and_decay_0_is_plain_training():
    latents, embeddings, recipe = _unet_inputs()
    initial = build.unet(2).state_dict()
    trained = {}
    for decay in (None, 0.0, 0.999):
        unet = build.unet(2)
        stats = train.train_unet(unet, build.scheduler(), latents, embeddings, ema_decay=decay, **recipe)
        assert stats.get("ema_decay") == decay
        trained[decay] = unet.state_dict()
    plain, zero, averaged = trained.values()
    # s - 1 * (s - p): the average of decay 0 is the last weights, up to float32 rounding
    assert all(torch.allclose(plain[k], zero[k], rtol=0, atol=1e-6) for k in plain)

    def distance(a, b):
        return float(sum((a[k].float() - b[k].float()).abs().sum() for k in a))

    # three steps into diffusers' EMA warm-up the average still leans towards where training started
    assert 0 < distance(averaged, initial) < distance(plain, initial)


def test_a_v_prediction_unet_trains_and_is_judged_on_the_velocity():
    from types import SimpleNamespace

    from recon.toy.zoo import quality

    latents, embeddings, recipe = _unet_inputs()
    unets = {}
    for prediction in ("epsilon", "v_prediction"):
        unet = build.unet(2)
        stats = train.train_unet(unet, build.scheduler(prediction), latents, embeddings, **recipe)
        assert stats.get("prediction_type") == (None if prediction == "epsilon" else prediction)
        unets[prediction] = unet.state_dict()
    assert not all(torch.equal(unets["epsilon"][k], unets["v_prediction"][k]) for k in unets["epsilon"])
    with pytest.raises(ValueError, match="prediction_type is 'sample'"):
        train.train_unet(build.unet(2), build.scheduler("sample"), latents, embeddings, **recipe)

    scheduler = build.scheduler("v_prediction")
    alphas = scheduler.alphas_cumprod

    def exact_velocity(noisy, t, encoder_hidden_states):  # reads the clean latent out of the caption
        a = alphas[t].view(-1, 1, 1, 1)
        clean = encoder_hidden_states[:, 0, :].reshape(-1, 4, 2, 2)
        noise = (noisy - a.sqrt() * clean) / (1 - a).sqrt()
        return SimpleNamespace(sample=a.sqrt() * noise - (1 - a).sqrt() * clean)

    clean = torch.randn(6, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    caption_embeddings = torch.zeros(6 * 2 + 1, 3, 16)
    caption_embeddings[:12, 0] = clean.reshape(6, 1, 16).repeat(1, 2, 1).reshape(-1, 16)
    result = quality.caption_reliance(exact_velocity, scheduler, clean, caption_embeddings, 2)
    assert result["mse_own_caption"] < 1e-6 < result["mse_other_caption"]


def test_caption_swap_is_zero_for_a_generator_that_ignores_its_caption():
    from types import SimpleNamespace

    from recon.toy.zoo import quality

    def seeded_noise(prompt, image, generator, **_):
        return SimpleNamespace(images=torch.rand(len(prompt), 8, 8, 3, generator=generator).numpy())

    def caption_length(prompt, image, generator, **_):
        noise = torch.rand(len(prompt), 8, 8, 3, generator=generator).numpy() * 0.1
        return SimpleNamespace(images=noise + np.array([len(p) / 40 for p in prompt]).reshape(-1, 1, 1, 1))

    data = train.SceneData.draw(6, seed=0, size=8)
    rows = np.arange(6)
    ignored = quality.caption_swap(seeded_noise, data, rows)
    assert ignored["pixel_change_by_caption"] == 0 and ignored["caption_over_seed"] == 0
    assert ignored["pixel_change_by_seed"] > 0.2
    followed = quality.caption_swap(caption_length, data, rows)
    assert followed["caption_over_seed"] > 1


def test_category_by_size_splits_the_judges_hits_by_the_objects_size():
    from types import SimpleNamespace

    from recon.toy.zoo import quality

    class FixedJudge(quality.AttributeJudge):  # answers given in advance, no CLIP
        def __init__(self, answers):
            self.answers = answers

        def __call__(self, images):
            return self.answers

    truth = [SimpleNamespace(category=c, size=s, color="red") for c, s in
             [("kite", "small"), ("ball", "small"), ("tree", "large"), ("kite", "large"), ("ball", "large")]]
    judged = [("red", "kite"), ("red", "kite"), ("red", "tree"), ("red", "kite"), ("red", "kite")]
    split = FixedJudge(judged).category_by_size(None, truth)
    assert split == {"all": 0.6, "small": 0.5, "large": 0.667, "n_small": 2, "n_large": 3}
