"""One check of a ``--device`` value before any model or file is touched (issue #14)."""

from __future__ import annotations

import torch


def check_device(device: str) -> str:
    """``device`` when this torch build can use it; else a one-line ValueError saying why."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` {device!r} is not a torch device (cpu, cuda, cuda:1, mps)"
                         ) from None  # fmt: skip
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"`device` {device}: this torch build ({torch.__version__}) has no "
                             "usable CUDA; use `device`=cpu")  # fmt: skip
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"`device` {device}: only {torch.cuda.device_count()} GPU(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"`device` {device}: MPS is not available here; use `device`=cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"`device` {device}: only cpu, cuda and mps are supported")
    return device
