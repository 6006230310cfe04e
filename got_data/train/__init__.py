"""Training sub-package: fit the GoT paper's SSGM diffusion model (Qwen2.5-VL + LoRA -> SDXL UNet) from GoT shards.

Heavy dependencies (torch, transformers, diffusers, peft) are imported by the modules that need them,
so `import got_data.train` stays cheap; the entry points are in `got_data.cli.train`.
"""
