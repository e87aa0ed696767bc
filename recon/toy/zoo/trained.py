"""The trained zoo's recipes, one method per model, as diffusers has one pipeline per task.

:class:`TrainedBuild` holds what the recipes share (the scenes, the quality probe, the CLIP tokenizer, the judge, the
VAE, the UNets' frozen inputs) and trains one model per method, saving it into the build's staging folder and
returning its manifest entry (the VAE's method returns its training stats: its weights reach the manifest inside
the pipelines). ``python -m recon.toy.zoo build`` runs them in :data:`~recon.toy.zoo.__main__.TRAINED_STAGES`' order,
each once unless an earlier run of the build finished it; a method reads the models of earlier stages from the
staging folder, whichever run trained them.
"""

from __future__ import annotations

import copy
import json
from functools import cached_property
from pathlib import Path

import numpy as np

from . import build, quality, train


def trained_entry(model_class: str, *, seed: int, training: dict, recipe: str, quality: dict) -> dict:
    """A trained model's manifest entry; steps and time are lifted from its training stats. Its quality is
    logged as soon as it is measured, so a long build can be judged (and stopped) model by model."""
    print(f"{model_class} (seed {seed}): {training['train_seconds']} s, quality {json.dumps(quality)}", flush=True)
    return {"class": model_class, "seed": seed, "training": training, "steps": training["steps"],
            "train_seconds": training["train_seconds"], "recipe": recipe, "quality": quality}


class TrainedBuild:
    """One trained build's shared inputs, and its recipes: :meth:`clip`, :meth:`blip`, :meth:`vgg19`, :meth:`vae`,
    :meth:`sd`, :meth:`sd2`, :meth:`dpt` and :meth:`depth`, each called with the recipes its stage reads."""

    def __init__(self, staging: Path, seed: int, recipes: dict, *, device: str = "cpu", progress: bool = True):
        self.staging, self.seed, self.device, self.progress = staging, seed, device, progress
        self.n_train = recipes["scenes"]["n_train"]
        self.n_held = recipes["scenes"]["n_held_out"]
        self.data, self.held = train.SceneData.draw(self.n_train + self.n_held, seed, build.IMAGE_SIZE).split(self.n_train)
        self.probe = train.SceneData.draw(recipes["scenes"]["n_quality"], seed, build.IMAGE_SIZE, single_object=True,
                                          stream=train.QUALITY_STREAM)
        self.probe_rows = np.arange(len(self.probe))
        self.common = f"on {self.n_train} simulated scenes drawn from the zoo seed (never the NSD simulation's stream)"
        self._objects = None
        self.tokenizer = build.write_clip_vocabulary(staging / "_vocab_clip")
        # the processor gets its own copy: saving a processor marks its tokenizer ("processor_class"), which
        # must not leak into the pipelines' tokenizers, whether or not this run saved CLIP
        self.clip_processor = build.clip_processor(copy.deepcopy(self.tokenizer))
        self.vision_start = staging / "_clip_vision_start.safetensors"
        self.dpt_processor = build.dpt_processor()
        self._diffusion_inputs: dict[str, tuple] = {}

    # ------------------------------------------------------------------ shared inputs
    def vision_scenes(self, r: dict) -> tuple[train.SceneData, train.SceneData]:
        """The vision towers' single-object scenes (training, held out), drawn once for both towers."""
        if self._objects is None:
            n_objects = r["vision_scenes"]["n_train"]
            self._objects = train.SceneData.draw(n_objects + self.n_held, self.seed, build.IMAGE_SIZE,
                                                 single_object=True).split(n_objects)
        return self._objects

    @cached_property
    def judge(self) -> quality.AttributeJudge:
        """The trained CLIP as the zoo's judge (read from the staging folder: the clip stage must have run)."""
        from transformers import CLIPModel

        return quality.AttributeJudge(CLIPModel.from_pretrained(self.staging / "clip"), self.tokenizer,
                                      self.clip_processor.image_processor)

    @cached_property
    def trained_vae(self):
        """The VAE the vae stage saved, as a fresh model (not from_pretrained: diffusers would record the scratch
        path in the pipelines' saved vae/config.json), with the latent scaling its training measured (config, not
        state: carried over)."""
        from safetensors.torch import load_file

        vae = build.vae(self.seed + 1)
        vae.load_state_dict(load_file(self.staging / "_vae" / "diffusion_pytorch_model.safetensors"))
        trained_config = json.loads((self.staging / "_vae" / "config.json").read_text())
        vae.register_to_config(scaling_factor=trained_config["scaling_factor"])
        return vae.eval()

    @cached_property
    def text_encoder(self):
        """CLIP's text tower as Stable Diffusion's text encoder."""
        return build.text_encoder_from(self.judge.clip)

    def latents_and_embeddings(self, encoder, key: str):
        """The UNets' frozen inputs, computed once per text encoder and only if a UNet still trains."""
        if key not in self._diffusion_inputs:
            vae = self.trained_vae
            self._diffusion_inputs[key] = train.encode_for_diffusion(vae.to(self.device), encoder.to(self.device),
                                                                     self.tokenizer, self.data)
            vae.to("cpu")
            encoder.to("cpu")
        return self._diffusion_inputs[key]

    def caption_reliance(self, unet, encoder, depth: bool = False) -> dict:
        """The trained UNet's held-out reliance on its caption (on the CPU, as the other quality figures)."""
        latents, _, embeddings = train.encode_for_diffusion(self.trained_vae, encoder, self.tokenizer, self.held)
        return quality.caption_reliance(
            unet, build.scheduler(), latents, embeddings, train.CAPTIONS_PER_SCENE, seed=self.seed,
            depth=train.latent_depth(self.held.depth, latents.shape[-1]) if depth else None)

    def at_methods_guidance(self, pipe) -> dict:
        """img2img from the probe's own images and captions, and the caption swap, at the methods' guidance (5)."""
        pipe.set_progress_bar_config(disable=True)
        return quality.at_methods_guidance(pipe, self.judge, self.probe, self.probe_rows, seed=self.seed)

    # --------------------------------------------------------------------- the recipes
    def clip(self, r: dict) -> dict:
        from safetensors.torch import save_file
        from transformers import CLIPModel

        seed = self.seed
        objects_train, objects_held = self.vision_scenes(r)  # rendered in worker processes: before CUDA starts here
        clip = build.clip_model(len(self.tokenizer), seed).to(self.device)
        vision_stats = train.pretrain_vision(clip.vision_model, self.clip_processor.image_processor, objects_train,
                                             held=objects_held, seed=seed + 5, progress=self.progress,
                                             **r["clip_vision"])
        save_file({k: v.contiguous().cpu() for k, v in clip.vision_model.state_dict().items()}, self.vision_start)
        stats = train.train_clip(clip, self.tokenizer, self.clip_processor.image_processor, self.data, seed=seed,
                                 progress=self.progress, **r["clip"]) | {"vision_pretraining": vision_stats}
        clip.to("cpu").save_pretrained(self.staging / "clip")
        self.clip_processor.save_pretrained(self.staging / "clip")
        judge = quality.AttributeJudge(CLIPModel.from_pretrained(self.staging / "clip"), self.tokenizer,
                                       self.clip_processor.image_processor)
        return trained_entry(
            "CLIPModel", seed=seed, training=stats,
            recipe=("recon.toy.zoo.train.pretrain_vision (the vision tower: classes of single-object scenes; "
                    "training.vision_pretraining gives the loss and its weights), then "
                    f"train_clip with that tower locked (LiT): contrastive image/caption loss {self.common}"),
            quality=quality.clip_retrieval(judge.clip, self.tokenizer, self.clip_processor.image_processor, self.held)
            | {"judge_on_true_images": judge.accuracy(self.probe.images, [s.objects[0] for s in self.probe.scenes])
               | {"n": len(self.probe)}})

    def blip(self, r: dict) -> dict:
        bert = build.write_bert_vocabulary(self.staging / "_vocab_bert")
        objects_train, objects_held = self.vision_scenes(r)
        blip, blip_processor = build.blip_model(bert, self.seed + 30).to(self.device), build.blip_processor(bert)
        vision_stats = train.pretrain_vision(blip.vision_model, blip_processor.image_processor, objects_train,
                                             held=objects_held, seed=self.seed + 35, progress=self.progress,
                                             **r["blip_vision"])
        stats = train.train_blip(blip, blip_processor, self.data, seed=self.seed + 30, progress=self.progress,
                                 **r["blip"]) | {"vision_pretraining": vision_stats}
        blip.to("cpu").save_pretrained(self.staging / "blip")
        blip_processor.save_pretrained(self.staging / "blip")
        return trained_entry(
            "BlipForConditionalGeneration", seed=self.seed + 30, training=stats,
            recipe=("recon.toy.zoo.train.pretrain_vision (the vision tower: single-object scene classes, as real "
                    f"BLIP starts from a pre-trained ViT), then train_blip with that tower locked: captioning loss {self.common}"),
            quality={"caption_attributes": quality.blip_attributes(blip, blip_processor, self.probe, self.probe_rows)})

    def vae(self, r: dict) -> dict:
        """The VAE alone (its training stats): the pipelines carry it into the manifest."""
        from . import vgg

        vae = build.vae(self.seed + 1).to(self.device)
        stats = train.train_vae(vae, self.data, seed=self.seed + 1, progress=self.progress,
                                vgg19=vgg.load_features(self.staging / "vgg19"), **r["vae"])
        vae.to("cpu").save_pretrained(self.staging / "_vae")
        return stats

    def sd(self, r: dict, vae_stats: dict) -> dict:
        latents_mean, latents_sd, embeddings = self.latents_and_embeddings(self.text_encoder, "sd")
        unet = build.unet(self.seed + 2).to(self.device)
        stats = train.train_unet(unet, build.scheduler(), (latents_mean, latents_sd), embeddings, seed=self.seed + 2,
                                 progress=self.progress, desc="train UNet (SD)", **r["unet"])
        vae, judge = self.trained_vae, self.judge
        sd = build.img2img_pipeline(vae, self.text_encoder, self.tokenizer, unet.to("cpu"))
        sd.save_pretrained(self.staging / "sd-img2img")
        return trained_entry(
            "StableDiffusionImg2ImgPipeline", seed=self.seed + 2, training=stats | {"vae": vae_stats},
            recipe=("recon.toy.zoo.train.train_vae (L1 + MSE + KL + a perceptual loss on the zoo's VGG19), then train_unet: noise prediction on the VAE's "
                    f"latents, conditioned by the trained CLIP text tower, captions dropped 10% for guidance, {self.common}"),
            quality={"vae": quality.vae_error(vae, self.held)
                     | {"judge_on_reconstructions": quality.reconstruction_attributes(vae, judge, self.probe,
                                                                                     self.probe_rows)},
                     "text_to_image_judged_by_clip": quality.generation_attributes(sd, judge, self.probe,
                                                                                   self.probe_rows, seed=self.seed),
                     **self.at_methods_guidance(sd),
                     "caption_reliance": self.caption_reliance(sd.unet, self.text_encoder)})

    def sd2(self, r: dict) -> dict:
        from safetensors.torch import load_file

        seed = self.seed
        clip_sd2 = build.clip_model(len(self.tokenizer), seed + 10)
        clip_sd2.vision_model.load_state_dict(load_file(self.vision_start))
        clip_sd2_stats = train.train_clip(clip_sd2.to(self.device), self.tokenizer, self.clip_processor.image_processor,
                                          self.data, seed=seed + 10, progress=self.progress, **r["clip_sd2"])
        text_sd2 = build.text_encoder_from(clip_sd2.to("cpu"))
        latents_mean, latents_sd, embeddings_sd2 = self.latents_and_embeddings(text_sd2, "sd2")
        unet_sd2 = build.unet(seed + 11).to(self.device)
        stats = train.train_unet(unet_sd2, build.scheduler(), (latents_mean, latents_sd), embeddings_sd2,
                                 seed=seed + 11, progress=self.progress, desc="train UNet (SD 2 stand-in)",
                                 **r["unet_sd2"])
        sd2 = build.img2img_pipeline(self.trained_vae, text_sd2, self.tokenizer, unet_sd2.to("cpu"))
        sd2.save_pretrained(self.staging / "sd2-img2img")
        return trained_entry(
            "StableDiffusionImg2ImgPipeline", seed=seed + 11, training=stats | {"text_encoder": clip_sd2_stats},
            recipe=("as sd-img2img (same VAE), with its own text encoder: the text tower of a second CLIP trained "
                    "from another seed for fewer steps (its vision tower starts from the same supervised start); "
                    f"stands in for SD 2.0 in the control analysis, {self.common}"),
            quality={"text_to_image_judged_by_clip": quality.generation_attributes(sd2, self.judge, self.probe,
                                                                                   self.probe_rows, seed=seed),
                     **self.at_methods_guidance(sd2),
                     "caption_reliance": self.caption_reliance(sd2.unet, text_sd2)})

    def dpt(self, r: dict) -> dict:
        dpt = build.dpt_model(self.seed + 40).to(self.device)
        stats = train.train_dpt(dpt, self.dpt_processor, self.data, seed=self.seed + 40, progress=self.progress,
                                **r["dpt"])
        dpt.to("cpu").save_pretrained(self.staging / "dpt")
        self.dpt_processor.save_pretrained(self.staging / "dpt")
        return trained_entry(
            "DPTForDepthEstimation", seed=self.seed + 40, training=stats,
            recipe=f"recon.toy.zoo.train.train_dpt: L1 regression of relative inverse depth {self.common}",
            quality=quality.dpt_correlation(dpt, self.dpt_processor, self.held))

    def depth(self, r: dict) -> dict:
        from transformers import CLIPTextModel, DPTForDepthEstimation

        text_sd2 = CLIPTextModel.from_pretrained(self.staging / "sd2-img2img" / "text_encoder").eval()
        latents_mean, latents_sd, embeddings_sd2 = self.latents_and_embeddings(text_sd2, "sd2")
        unet_depth = build.unet(self.seed + 20, in_channels=build.LATENT_CHANNELS + 1).to(self.device)
        stats = train.train_unet(unet_depth, build.scheduler(), (latents_mean, latents_sd), embeddings_sd2,
                                 depth=train.latent_depth(self.data.depth, latents_mean.shape[-1]), seed=self.seed + 20,
                                 progress=self.progress, desc="train UNet (depth)", **r["unet_depth"])
        dpt = DPTForDepthEstimation.from_pretrained(self.staging / "dpt").eval()
        depth = build.depth2img_pipeline(self.trained_vae, text_sd2, self.tokenizer, unet_depth.to("cpu"), dpt,
                                         self.dpt_processor)
        depth.save_pretrained(self.staging / "sd-depth2img")
        return trained_entry(
            "StableDiffusionDepth2ImgPipeline", seed=self.seed + 20, training=stats,
            recipe=("train_unet with the depth map (nearness on the latent grid, scaled to [-1, 1] as the pipeline "
                    f"does) as a fifth input channel, SD 2 stand-in's text encoder and VAE, {self.common}"),
            quality={"text_and_depth_to_image_judged_by_clip": quality.generation_attributes(
                depth, self.judge, self.probe, self.probe_rows, depth=self.probe.depth, seed=self.seed),
                     "caption_reliance": self.caption_reliance(depth.unet, text_sd2, depth=True)})

    def vgg19(self, r: dict) -> dict:
        from . import vgg

        return vgg.train_and_save(self.staging / "vgg19", self.data, self.held, seed=self.seed + 50,
                                  progress=self.progress, **r["vgg19"])
