"""The torch device a setting (``train.device``, ``extract.device``) names on this machine."""

from __future__ import annotations

import torch

from cplvad.errors import ConfigError


def resolve_device(name: str, setting: str = "device") -> torch.device:
    """``auto`` = the GPU when one is visible, else the CPU; ``cuda`` without a GPU is refused, naming
    ``setting`` so the user knows which knob to change."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting}=cuda but torch sees no CUDA GPU here; use auto or cpu")
    return torch.device(name)
