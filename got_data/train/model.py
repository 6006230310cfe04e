"""The GoT model being fitted: Qwen2.5-VL with LoRA, two projectors, and the SSGM (SDXL UNet, 12-channel input).

The MLLM's last hidden states at the N image-generation tokens become the UNet's cross-attention
states (one linear map) and its pooled embedding (a second linear map, averaged over the tokens).
The UNet input is [noisy latent | reference latent | spatial latent] on the channel axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from got_data.train.components import Components
from got_data.train.config import LoraSettings
from got_data.train.guidance import keep_masks


def ssgm_input(noisy: torch.Tensor, reference: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """The widened UNet's input: channels [noisy | reference | spatial] (4 + 4 + 4 = 12)."""
    return torch.cat([noisy, reference, spatial], dim=1)


def segment_mean(latents: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Average consecutive groups of latents: counts[i] canvases belong to sample i."""
    index = torch.repeat_interleave(torch.arange(len(counts), device=latents.device), counts.to(latents.device))
    sums = torch.zeros((len(counts), *latents.shape[1:]), dtype=latents.dtype, device=latents.device)
    sums.index_add_(0, index, latents)
    return sums / counts.to(latents.device, latents.dtype).view(-1, *([1] * (latents.dim() - 1)))


@dataclass
class LossParts:
    total: torch.Tensor
    ce: torch.Tensor
    mse: torch.Tensor


class GoTModel(nn.Module):
    def __init__(self, parts: Components, lora: LoraSettings) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.tokenizer = parts.tokenizer
        self.image_processor = parts.image_processor
        self.gen_token_ids = parts.gen_token_ids
        self.noise_scheduler = parts.noise_scheduler
        pattern = r".*language_model.*\.(" + "|".join(lora.target_modules) + r")"
        peft_config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=pattern,
            trainable_token_indices={"embed_tokens": list(parts.gen_token_ids)},
        )
        self.mllm = get_peft_model(parts.mllm, peft_config)
        hidden = parts.mllm.config.text_config.hidden_size
        unet_config = parts.unet.config
        pooled = unet_config.projection_class_embeddings_input_dim - 6 * unet_config.addition_time_embed_dim
        self.text_projector = nn.Linear(hidden, unet_config.cross_attention_dim)
        self.pooled_projector = nn.Linear(hidden, pooled)
        self.unet = parts.unet
        self.vae = parts.vae
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)

    # -- conditions ------------------------------------------------------------------------------
    def mllm_forward(self, batch: dict, with_labels: bool = True) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Run the MLLM on prompt + GoT + gen tokens: (CE loss on the GoT, cross states, pooled)."""
        device = self.text_projector.weight.device
        pixels = batch.get("pixel_values")
        out = self.mllm(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            pixel_values=None if pixels is None else pixels.to(device),
            image_grid_thw=None if pixels is None else batch["image_grid_thw"].to(device),
            labels=batch["labels"].to(device) if with_labels else None,
            output_hidden_states=True,
        )
        hidden = out.hidden_states[-1]
        is_gen = torch.isin(batch["input_ids"].to(device), torch.tensor(self.gen_token_ids, device=device))
        states = hidden[is_gen].view(hidden.shape[0], len(self.gen_token_ids), hidden.shape[-1])
        states = states.to(self.text_projector.weight.dtype)
        return out.loss, self.text_projector(states), self.pooled_projector(states).mean(dim=1)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """VAE latents (scaled) of images in [-1, 1]; the mode unless `sample` (used for targets)."""
        dist = self.vae.encode(pixels.to(self.vae.device, self.vae.dtype)).latent_dist
        latents = dist.sample() if sample else dist.mode()
        return (latents * self.vae.config.scaling_factor).float()

    def spatial_latents(self, canvases: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return segment_mean(self.encode_images(canvases), counts)

    def time_ids(self, batch: int, height: int, width: int, device) -> torch.Tensor:
        """SDXL micro-conditioning: original size, crop top-left (0, 0), target size."""
        return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32, device=device).repeat(batch, 1)

    def predict_noise(self, noisy, timesteps, reference, spatial, cross, pooled) -> torch.Tensor:
        h, w = noisy.shape[-2:]
        return self.unet(
            ssgm_input(noisy, reference, spatial),
            timesteps,
            encoder_hidden_states=cross,
            added_cond_kwargs={"text_embeds": pooled, "time_ids": self.time_ids(len(noisy), h * self.vae_scale, w * self.vae_scale, noisy.device)},
        ).sample

    # -- training --------------------------------------------------------------------------------
    def training_loss(self, batch: dict, branches: torch.Tensor, noise_offset: float, ce_weight: float, mse_weight: float) -> LossParts:
        """CE on the GoT tokens + diffusion MSE with per-sample dropped conditions (`branches`)."""
        device = self.text_projector.weight.device
        ce, cross, pooled = self.mllm_forward(batch)
        target = self.encode_images(batch["target"], sample=True)
        reference = self.encode_images(batch["reference"])
        spatial = self.spatial_latents(batch["canvases"], batch["canvas_counts"])
        keep_text, keep_ref, keep_spatial = (m.to(device) for m in keep_masks(branches))
        cross = cross * keep_text.view(-1, 1, 1)
        pooled = pooled * keep_text.view(-1, 1)
        reference = reference * keep_ref.view(-1, 1, 1, 1)
        spatial = spatial * keep_spatial.view(-1, 1, 1, 1)
        noise = torch.randn_like(target)
        if noise_offset:
            noise = noise + noise_offset * torch.randn(target.shape[0], target.shape[1], 1, 1, device=device)
        steps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (target.shape[0],), device=device)
        noisy = self.noise_scheduler.add_noise(target, noise, steps)
        eps = self.predict_noise(noisy, steps, reference, spatial, cross, pooled)
        mse = F.mse_loss(eps.float(), noise.float())
        return LossParts(total=ce_weight * ce + mse_weight * mse, ce=ce.detach(), mse=mse.detach())
