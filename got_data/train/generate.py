"""Inference: the MLLM writes (or is given) a GoT, its boxes become spatial masks, and the SSGM draws the
image with three-way classifier-free guidance (text, spatial, reference).

Passing an edited GoT is the paper's interactive generation: move a box or change a phrase and draw again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from got_data.errors import CodecError, InputError
from got_data.records import parse_got, strip_special_tokens
from got_data.train.checkpoint import checkpoint_config, load_weights
from got_data.train.conditioning import from_model_range, got_boxes, mask_canvases, to_model_range
from got_data.train.guidance import EDIT_SCALES, T2I_SCALES, GuidanceScales, combine_guidance
from got_data.train.model import GoTModel
from got_data.train.trainer import build_model, make_encoder

log = logging.getLogger(__name__)


def sanitize_got(text: str) -> str:
    """A GoT the codec accepts: model-written text as is when it parses, else with every `<|...|>` token
    removed (boxes lost) so malformed grounding or control tokens never reach the next model call."""
    text = text.strip()
    try:
        parse_got(text)
        return text
    except CodecError as exc:
        log.warning("the written GoT does not parse (%s); drawing from its plain text without boxes", exc)
        return strip_special_tokens(text).strip()


@dataclass
class Drawing:
    image: Image.Image
    got: str


class GoTGenerator:
    def __init__(self, model: GoTModel, encoder, device: str, max_new_tokens: int = 1024, default_size: int = 1024) -> None:
        self.model = model.eval()
        self.encoder = encoder
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.default_size = default_size

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, device: str | None = None) -> "GoTGenerator":
        config = checkpoint_config(checkpoint)
        if device is not None:
            config = config.model_copy(update={"device": device})
        model = build_model(config, checkpoint.parent)
        load_weights(model, checkpoint)
        return cls(
            model, make_encoder(config, model), config.device,
            max_new_tokens=config.model.mllm.max_new_tokens, default_size=config.data.resolution,
        )

    @torch.no_grad()
    def write_got(self, instruction: str, source: Image.Image | None, max_new_tokens: int | None = None) -> str:
        """The GoT the MLLM writes for a prompt (and source image, for edits), greedily decoded."""
        prompt = self.encoder.prompt(instruction, source)
        ids = torch.tensor([prompt.input_ids], device=self.device)
        kwargs = {}
        if prompt.pixel_values is not None:
            kwargs = {"pixel_values": prompt.pixel_values.to(self.device), "image_grid_thw": prompt.image_grid_thw.to(self.device)}
        out = self.model.mllm.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            do_sample=False,
            eos_token_id=[self.encoder.gen_token_ids[0], self.encoder.im_end],
            pad_token_id=self.encoder.tokenizer.pad_token_id,
            **kwargs,
        )
        return sanitize_got(self.encoder.decode_got(out[0, ids.shape[1] :].tolist()))

    def _latents(self, pixels) -> torch.Tensor:
        return self.model.encode_images(to_model_range(pixels).to(self.device))

    @torch.no_grad()
    def draw(
        self,
        instruction: str,
        got: str,
        source: Image.Image | None,
        width: int,
        height: int,
        steps: int = 30,
        scales: GuidanceScales | None = None,
        seed: int = 0,
    ) -> Image.Image:
        from diffusers import EulerDiscreteScheduler

        model = self.model
        factor = model.vae_scale * 2 ** (len(model.unet.config.block_out_channels) - 1)
        if width % factor or height % factor:
            raise InputError(f"image size {width}x{height} must be a multiple of {factor} for this model")
        scales = scales or (EDIT_SCALES if source is not None else T2I_SCALES)
        encoded = self.encoder.with_got(instruction, source, got)
        ids = torch.tensor([encoded.input_ids])
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids,
                 "pixel_values": encoded.pixel_values, "image_grid_thw": encoded.image_grid_thw}
        _, cross, pooled = model.mllm_forward(batch, with_labels=False)
        if source is None:
            ref_pixels = np.zeros((height, width, 3), dtype=np.uint8)
        else:
            ref_pixels = np.array(source.convert("RGB").resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8)
        reference = self._latents(ref_pixels[None])
        canvases = to_model_range(mask_canvases(got_boxes(got), width, height)).to(self.device)
        spatial = model.spatial_latents(canvases, torch.tensor([len(canvases)]))
        zeros = torch.zeros_like(reference)
        # Branches in order: full, text (no spatial), image (reference only), unconditional.
        refs = torch.cat([reference, reference, reference, zeros])
        spatials = torch.cat([spatial, zeros, zeros, zeros])
        crosses = torch.cat([cross, cross, torch.zeros_like(cross), torch.zeros_like(cross)])
        pooleds = torch.cat([pooled, pooled, torch.zeros_like(pooled), torch.zeros_like(pooled)])
        scheduler = EulerDiscreteScheduler.from_config(model.noise_scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        shape = (1, reference.shape[1], height // model.vae_scale, width // model.vae_scale)
        latents = torch.randn(shape, generator=generator).to(self.device) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(latents, t).repeat(4, 1, 1, 1)
            eps = model.predict_noise(x, t.expand(4), refs, spatials, crosses, pooleds)
            full, text, image, uncond = eps.chunk(4)
            guided = combine_guidance(full, text, image, uncond, scales)
            latents = scheduler.step(guided, t, latents).prev_sample
        decoded = model.vae.decode((latents / model.vae.config.scaling_factor).to(model.vae.dtype)).sample
        return from_model_range(decoded[0])

    def run(
        self,
        prompt: str | None,
        got: str | None,
        source: Image.Image | None,
        width: int,
        height: int,
        steps: int,
        scales: GuidanceScales | None,
        seed: int,
    ) -> Drawing:
        """Write the GoT unless given (a given one must parse), then draw."""
        if got is None:
            if prompt is None:
                raise InputError("give a prompt, a GoT, or both")
            got = self.write_got(prompt, source)
        else:
            try:
                parsed = parse_got(got.strip())
            except CodecError as exc:
                raise InputError(f"the given GoT does not parse: {exc}") from exc
            got = got.strip()
            prompt = prompt if prompt is not None else parsed.plain
        return Drawing(self.draw(prompt, got, source, width, height, steps, scales, seed), got)
