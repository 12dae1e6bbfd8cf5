"""Image augmentation as training runs it: on the batch's device, from the loop's seeded generator."""

from __future__ import annotations

import torch

from builder.augment import image_augmenter, max_shift_for, shift_and_flip


def test_shifts_and_flips_without_touching_the_input():
    X = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    before = X.clone()
    out = shift_and_flip(X, torch.Generator().manual_seed(0), max_shift=0, flip=False)
    assert torch.equal(out, X)
    shifted = shift_and_flip(X, torch.Generator().manual_seed(3), max_shift=2)
    assert shifted.shape == X.shape and shifted.dtype == torch.float32
    assert torch.equal(X, before)
    for image, moved in zip(X, shifted, strict=True):  # each is a shift by at most 2 pixels
        assert any(
            torch.equal(moved[0, 2:-2, 2:-2], image[0, 2 - dy:14 - dy, 2 - dx:14 - dx])
            for dy in range(-2, 3) for dx in range(-2, 3)
        )
    flipped = shift_and_flip(X[:1].repeat(64, 1, 1, 1), torch.Generator().manual_seed(0), flip=True, max_shift=0)
    mirrored = [torch.equal(f, X[0].flip(-1)) for f in flipped]
    assert 10 < sum(mirrored) < 54
    assert all(m or torch.equal(f, X[0]) for f, m in zip(flipped, mirrored, strict=True))


def test_the_same_seed_gives_the_same_batches_and_the_default_shift_follows_the_size():
    X = torch.randn(8, 3, 32, 48)
    first = image_augmenter(flip=True)(X, torch.Generator().manual_seed(7))
    again = image_augmenter(flip=True)(X, torch.Generator().manual_seed(7))
    assert torch.equal(first, again) and not torch.equal(first, X)
    assert max_shift_for(32, 48) == 2 and max_shift_for(8, 8) == 1
