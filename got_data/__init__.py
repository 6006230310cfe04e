"""got-data: reasoning-chain (GoT) datasets for image generation and editing."""

__version__ = "0.1.0"
