"""Loading the pretrained parts (Qwen2.5-VL, SDXL UNet/VAE/scheduler) from local folders, or building
tiny random-weight ones from config.

Nothing downloads: real parts load with local_files_only=True. Tiny parts are built once into the run
folder (`<run>/base/`) and then loaded from there like real ones, so training, resume and generation
share one loading path and a checkpoint never depends on re-drawing random weights.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from got_data.errors import ModelError
from got_data.train.config import ModelSettings, TinyDiffusion, TinyMLLM
from got_data.train.prompting import add_gen_tokens

TINY_MARKER = ".got-data-tiny-base.json"
TINY_LATENT_CHANNELS = 4


@dataclass
class Components:
    """The loaded parts. Typed Any: transformers' and diffusers' models expose their configs and
    methods (`config.hidden_size`, `save_pretrained`, `add_noise`) as dynamic attributes."""

    mllm: Any
    tokenizer: Any
    image_processor: Any
    gen_token_ids: list[int]
    unet: Any
    vae: Any
    noise_scheduler: Any


def sdxl_noise_scheduler():
    """SDXL's training noise schedule (scaled-linear betas, epsilon prediction)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )


def _build_tiny_mllm(settings: TinyMLLM, num_gen_tokens: int, out: Path) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor

    from got_data.engines.tiny_models import build_tokenizer

    tokenizer = build_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    head_dim = settings.hidden_size // settings.num_heads
    quarter = head_dim // 4
    config = Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=settings.hidden_size,
            intermediate_size=settings.intermediate_size,
            num_hidden_layers=settings.num_layers,
            num_attention_heads=settings.num_heads,
            num_key_value_heads=settings.num_kv_heads,
            vocab_size=max(((len(tokenizer) + num_gen_tokens + 63) // 64) * 64, settings.vocab_size or 0),
            max_position_embeddings=8192,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter],
            },
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=settings.vision_depth,
            hidden_size=settings.vision_hidden_size,
            intermediate_size=settings.vision_intermediate_size or 2 * settings.vision_hidden_size,
            num_heads=settings.vision_heads,
            out_hidden_size=settings.hidden_size,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[settings.vision_depth - 1],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(settings.seed)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    Qwen2VLImageProcessor().save_pretrained(out)


def tiny_vae(settings: TinyDiffusion, resolution: int) -> Any:
    """A random-weight AutoencoderKL of the tiny dimensions (Any: diffusers' types miss
    ModelMixin.save_pretrained). The caller seeds torch's RNG."""
    from diffusers import AutoencoderKL

    blocks = len(settings.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=tuple(settings.vae_channels),
        layers_per_block=1,
        latent_channels=TINY_LATENT_CHANNELS,
        norm_num_groups=settings.norm_groups,
        sample_size=resolution,
    )


def _build_tiny_diffusion(settings: TinyDiffusion, resolution: int, out: Path) -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(settings.seed)
    vae_blocks = len(settings.vae_channels)
    vae = tiny_vae(settings, resolution)
    blocks = len(settings.unet_channels)
    unet: Any = UNet2DConditionModel(
        sample_size=resolution // 2 ** (vae_blocks - 1),
        in_channels=TINY_LATENT_CHANNELS,
        out_channels=TINY_LATENT_CHANNELS,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (blocks - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (blocks - 1) + ("UpBlock2D",),
        block_out_channels=tuple(settings.unet_channels),
        layers_per_block=settings.layers_per_block,
        transformer_layers_per_block=tuple(settings.transformer_layers or [1] * blocks),
        norm_num_groups=settings.norm_groups,
        cross_attention_dim=settings.cross_attention_dim,
        attention_head_dim=tuple(settings.attention_heads or [max(1, c // 16) for c in settings.unet_channels]),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=settings.time_embed_dim,
        projection_class_embeddings_input_dim=6 * settings.time_embed_dim + settings.pooled_dim,
    )
    unet.save_pretrained(out / "unet")
    vae.save_pretrained(out / "vae")
    sdxl_noise_scheduler().save_pretrained(out / "scheduler")


def ensure_tiny_base(model: ModelSettings, resolution: int, folder: Path) -> None:
    """Build the tiny random-weight parts into `folder` unless a build with these settings is there."""
    wanted = {
        "mllm": model.mllm.tiny.model_dump() if model.mllm.tiny else None,
        "diffusion": model.diffusion.tiny.model_dump() if model.diffusion.tiny else None,
        "num_gen_tokens": model.num_gen_tokens,
        "resolution": resolution,
    }
    marker = folder / TINY_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if model.mllm.tiny:
        _build_tiny_mllm(model.mllm.tiny, model.num_gen_tokens, folder / "mllm")
    if model.diffusion.tiny:
        _build_tiny_diffusion(model.diffusion.tiny, resolution, folder / "diffusion")
    marker.write_text(json.dumps(wanted))


def base_paths(model: ModelSettings, run_dir: Path) -> tuple[Path, Path]:
    """Folders of the base MLLM and diffusion model: the configured ones, or the run's tiny builds."""
    mllm = model.mllm.path if model.mllm.path is not None else run_dir / "base" / "mllm"
    diffusion = model.diffusion.path if model.diffusion.path is not None else run_dir / "base" / "diffusion"
    return mllm, diffusion


def widen_conv_in(unet, channels: int = 12) -> None:
    """Widen the UNet's input convolution to `channels` inputs: the original weights stay on the first
    in_channels inputs, every new weight is zero, so the widened UNet starts as the pretrained one."""
    old = unet.conv_in
    if old.in_channels == channels:
        return
    if old.in_channels > channels:
        raise ModelError(f"UNet input convolution has {old.in_channels} channels, more than {channels}")
    new = torch.nn.Conv2d(
        channels, old.out_channels, old.kernel_size, old.stride, old.padding, device=old.weight.device, dtype=old.weight.dtype
    )
    assert new.bias is not None  # Conv2d has a bias unless told otherwise
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=channels)


def load_components(model: ModelSettings, run_dir: Path, mllm_dtype: torch.dtype, vae_dtype: torch.dtype) -> Components:
    """Load tokenizer, image processor, MLLM, UNet (conv_in widened to 12), VAE and noise scheduler."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor

    mllm_path, diffusion_path = base_paths(model, run_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(mllm_path, local_files_only=True)
        image_processor = Qwen2VLImageProcessor.from_pretrained(
            mllm_path,
            local_files_only=True,
            min_pixels=model.mllm.image_min_pixels,
            max_pixels=model.mllm.image_max_pixels,
            size={"shortest_edge": model.mllm.image_min_pixels, "longest_edge": model.mllm.image_max_pixels},
        )
        mllm: Any = Qwen2_5_VLForConditionalGeneration.from_pretrained(mllm_path, local_files_only=True, dtype=mllm_dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load Qwen2.5-VL from {mllm_path}: {exc}") from exc
    try:
        unet = UNet2DConditionModel.from_pretrained(diffusion_path, subfolder="unet", local_files_only=True)
        if model.diffusion.vae is not None:
            vae = AutoencoderKL.from_pretrained(model.diffusion.vae, local_files_only=True, torch_dtype=vae_dtype)
        else:
            vae = AutoencoderKL.from_pretrained(diffusion_path, subfolder="vae", local_files_only=True, torch_dtype=vae_dtype)
        noise_scheduler = DDPMScheduler.from_pretrained(diffusion_path, subfolder="scheduler", local_files_only=True)
    except (OSError, ValueError) as exc:
        vae_from = f" (VAE from {model.diffusion.vae})" if model.diffusion.vae is not None else ""
        raise ModelError(
            f"cannot load the SDXL parts (unet/, vae/, scheduler/) from {diffusion_path}{vae_from}: {exc}"
        ) from exc
    if unet.config.addition_embed_type != "text_time":
        raise ModelError(f"{diffusion_path}: the UNet is not SDXL-style (addition_embed_type must be 'text_time')")
    gen_ids = add_gen_tokens(tokenizer, model.num_gen_tokens)
    if len(tokenizer) > mllm.get_input_embeddings().num_embeddings:
        mllm.resize_token_embeddings(len(tokenizer))
    widen_conv_in(unet, 12)
    vae.requires_grad_(False)
    return Components(mllm, tokenizer, image_processor, gen_ids, unet, vae, noise_scheduler)
