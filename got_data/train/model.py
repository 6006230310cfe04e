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
from got_data.train.config import LoraSettings, TrainSettings
from got_data.train.guidance import keep_masks
from got_data.train.prompting import IGNORE_INDEX
from got_data.train.randomness import draw_samples


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
    def __init__(self, parts: Components, lora: LoraSettings, spatial_guidance: bool = True) -> None:
        super().__init__()
        self.spatial_guidance = spatial_guidance
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
        """Run the MLLM on prompt + GoT + gen tokens: (CE on the GoT, cross states, pooled).

        The CE is each sample's mean over its labelled tokens, averaged over samples, so a batch split
        between workers averages to the same loss (a token mean over the whole batch would not)."""
        device = self.text_projector.weight.device
        pixels = batch.get("pixel_values")
        out = self.mllm(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            pixel_values=None if pixels is None else pixels.to(device),
            image_grid_thw=None if pixels is None else batch["image_grid_thw"].to(device),
            output_hidden_states=True,
        )
        hidden = out.hidden_states[-1]
        is_gen = torch.isin(batch["input_ids"].to(device), torch.tensor(self.gen_token_ids, device=device))
        states = hidden[is_gen].view(hidden.shape[0], len(self.gen_token_ids), hidden.shape[-1])
        states = states.to(self.text_projector.weight.dtype)
        ce = per_sample_ce(out.logits, batch["labels"].to(device)).mean() if with_labels else None
        return ce, self.text_projector(states), self.pooled_projector(states).mean(dim=1)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """VAE latents (scaled) of images in [-1, 1]: the posterior's mode."""
        dist = self.vae.encode(pixels.to(self.vae.device, self.vae.dtype)).latent_dist
        return (dist.mode() * self.vae.config.scaling_factor).float()

    @torch.no_grad()
    def sample_latents(self, pixels: torch.Tensor, standard_normal: torch.Tensor) -> torch.Tensor:
        """Scaled VAE posterior samples mean + std * z, with z given (drawn per sample by the caller)."""
        dist = self.vae.encode(pixels.to(self.vae.device, self.vae.dtype)).latent_dist
        latents = dist.mean.float() + dist.std.float() * standard_normal.to(dist.mean.device)
        return latents * self.vae.config.scaling_factor

    def latent_shape(self, resolution: int) -> tuple[int, int, int]:
        side = resolution // self.vae_scale
        return (self.vae.config.latent_channels, side, side)

    def spatial_latents(self, canvases: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The spatial condition: each sample's mask canvases encoded and averaged; zeros when the model
        is built without spatial guidance (the ablation), so it never sees a box but through the text."""
        latents = segment_mean(self.encode_images(canvases), counts)
        return latents if self.spatial_guidance else torch.zeros_like(latents)

    def time_ids(self, batch: int, height: int, width: int, device) -> torch.Tensor:
        """SDXL micro-conditioning: original size, crop top-left (0, 0), target size."""
        return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32, device=device).repeat(batch, 1)

    def predict_noise(self, noisy, timesteps, reference, spatial, cross, pooled) -> torch.Tensor:
        h, w = noisy.shape[-2:]
        return self.unet(
            ssgm_input(noisy, reference, spatial),
            timesteps,
            encoder_hidden_states=cross,
            added_cond_kwargs={"text_embeds": pooled,
                               "time_ids": self.time_ids(len(noisy), h * self.vae_scale, w * self.vae_scale, noisy.device)},
        ).sample

    # -- training --------------------------------------------------------------------------------
    def forward(self, batch: dict, train: TrainSettings, seed: int, step: int) -> LossParts:
        """The training loss (forward is what DistributedDataParallel wraps)."""
        return self.training_loss(batch, train, seed, step)

    def training_loss(self, batch: dict, train: TrainSettings, seed: int, step: int) -> LossParts:
        """CE on the GoT tokens + diffusion MSE; every sample's noise, timestep and dropped conditions
        come from (seed, step, its key), whichever worker or micro-batch holds it."""
        device = self.text_projector.weight.device
        draws = draw_samples(
            batch["keys"], seed, step, self.latent_shape(batch["target"].shape[-1]),
            self.noise_scheduler.config.num_train_timesteps, train.drop, train.noise_offset,
        )
        ce, cross, pooled = self.mllm_forward(batch)
        assert ce is not None  # computed: the batch has labels
        target = self.sample_latents(batch["target"], draws.posterior)
        reference = self.encode_images(batch["reference"])
        spatial = self.spatial_latents(batch["canvases"], batch["canvas_counts"])
        keep_text, keep_ref, keep_spatial = (m.to(device) for m in keep_masks(draws.branches))
        cross = cross * keep_text.view(-1, 1, 1)
        pooled = pooled * keep_text.view(-1, 1)
        reference = reference * keep_ref.view(-1, 1, 1, 1)
        spatial = spatial * keep_spatial.view(-1, 1, 1, 1)
        noise = draws.noise.to(device)
        steps = draws.timesteps.to(device)
        noisy = self.noise_scheduler.add_noise(target, noise, steps)
        eps = self.predict_noise(noisy, steps, reference, spatial, cross, pooled)
        mse = F.mse_loss(eps.float(), noise.float())
        return LossParts(
            total=train.ce_weight * ce + train.mse_weight * mse, ce=ce.detach(), mse=mse.detach()
        )


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of each sample, averaged over its labelled tokens: [B]."""
    shifted = logits[:, :-1].float()
    targets = labels[:, 1:]
    tokens = F.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(targets.shape)
    counts = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    return tokens.sum(dim=1) / counts
