"""Light image augmentation on the training device, one batch at a time.

Each training batch of images is shifted by a few pixels (a different shift per image; the edge
pixels are repeated into the gap) and, for photos, half of them mirrored left-right. The network
then sees slightly different pictures every epoch and learns shapes rather than exact pixel
positions. Digits and text must not be mirrored (a mirrored "2" is not a 2), so mirroring is a
separate choice. It runs in torch on the batch where it already is (CPU or GPU) and draws from the
training loop's own seeded generator, so a run repeats exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def max_shift_for(height: int, width: int) -> int:
    """Shift of up to 1/16 of the shorter side, at least one pixel."""
    return max(1, min(height, width) // 16)


def image_augmenter(flip: bool = False) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """An augmentation for ``TensorData.augment``: random shifts, and mirroring when ``flip``."""

    def augment(xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return shift_and_flip(xb, generator, flip=flip)

    return augment


def shift_and_flip(xb: torch.Tensor, generator: torch.Generator, *, flip: bool = False,
                   max_shift: int | None = None) -> torch.Tensor:
    """Shift each image of ``xb`` ``(B, C, H, W)`` by up to ``max_shift`` pixels; mirror half if ``flip``.

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    n, _, h, w = xb.shape
    shift = max_shift_for(h, w) if max_shift is None else int(max_shift)
    device = xb.device
    out = xb
    if shift > 0 and n:
        padded = F.pad(xb, (shift, shift, shift, shift), mode="replicate")  # (B, C, H+2s, W+2s)
        dy = torch.randint(-shift, shift + 1, (n,), generator=generator, device=device)
        dx = torch.randint(-shift, shift + 1, (n,), generator=generator, device=device)
        rows = (shift - dy)[:, None] + torch.arange(h, device=device)[None, :]  # (B, H)
        cols = (shift - dx)[:, None] + torch.arange(w, device=device)[None, :]  # (B, W)
        batch = torch.arange(n, device=device)[:, None, None]
        # Advanced indexing on dims 0, 2, 3 puts them first: (B, H, W, C) -> back to (B, C, H, W).
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip and n:
        mirrored = torch.rand(n, generator=generator, device=device) < 0.5  # (B,)
        out = torch.where(mirrored[:, None, None, None], out.flip(-1), out)
    return out.contiguous()
