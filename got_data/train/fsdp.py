"""FSDP2 (`fully_shard`) for the GoT model: weights, gradients and optimizer state sharded over the workers.

Each MLLM decoder layer, each UNet transformer layer and resnet, and then each UNet block (down, mid,
up: their projections, norms and samplers) becomes its own FSDP unit, gathered only while it runs (the
largest at SDXL's size: a 1280-wide transformer layer, 35 M parameters). The root unit holds the rest
(embeddings, the vision tower, projectors, VAE, the UNet's input, time and output layers). The vision
tower stays in the root: it runs only on ranks whose batch holds a source image, and a unit's gather
is a collective every rank must join. FSDP2 shards per parameter, so frozen base weights and trained
LoRA weights share a unit. Every worker builds the whole model in CPU memory, then `fully_shard`
moves each unit's shard to the worker's device.
"""

from __future__ import annotations

from torch import nn

from got_data.train.model import GoTModel

# By class name (transformers' and diffusers' module paths move between versions): Qwen2.5-VL's
# language-model layers, and the UNet's transformer layers and resnets.
_MLLM_UNIT_SUFFIX = "DecoderLayer"
_UNET_UNITS = ("BasicTransformerBlock", "ResnetBlock2D")


def fsdp_units(model: GoTModel) -> list[nn.Module]:
    """The submodules sharded as their own units, innermost first (a unit holds what its inner units do not)."""
    mllm = [m for m in model.mllm.modules() if type(m).__name__.endswith(_MLLM_UNIT_SUFFIX)]
    unet = model.unet
    layers = [m for m in unet.modules() if type(m).__name__ in _UNET_UNITS]
    return [*mllm, *layers, *unet.down_blocks, unet.mid_block, *unet.up_blocks]


def shard_model(model: GoTModel, world: int, device_type: str) -> GoTModel:
    """`fully_shard` every unit, then the root, over one mesh of `world` ranks (the default process group,
    which Ray Train has set up). Returns the same module, now an FSDP module."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device_type, (world,))
    for unit in fsdp_units(model):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def set_gradient_sync(model: nn.Module, sync: bool) -> None:
    """FSDP2's counterpart of DDP's no_sync(): off for all but the last micro-batch of a step."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(sync)
