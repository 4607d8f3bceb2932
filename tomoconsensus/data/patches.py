"""Random patch sampling for training (the paper's 96x96 patches, 40 per slice per epoch).

The patch locations of an epoch are a pure function of ``(seed, epoch)``, so a run resumed from a
checkpoint at step ``k`` of an epoch draws exactly the patches an uninterrupted run would have.
The same location is cut from x1, x2, x_est (and the reference) of a slice.
"""

from __future__ import annotations

import torch


class PatchSampler:
    """Per-epoch random patch coordinates and batched extraction.

    Parameters
    ----------
    n_slices, height, width : int
        Size of the image stack patches are cut from.
    patch_size : int
        Square patch side in pixels (clipped to the image size).
    patches_per_slice : int
        Patches drawn from every slice in one epoch.
    batch_size : int
        Patches per optimisation step (an incomplete last batch is dropped).
    seed : int
        Base seed.
    """

    def __init__(self, n_slices: int, height: int, width: int, patch_size: int = 96,
                 patches_per_slice: int = 40, batch_size: int = 40, seed: int = 0):
        self.n_slices, self.height, self.width = n_slices, height, width
        self.patch_size = min(patch_size, height, width)
        self.patches_per_slice = patches_per_slice
        self.batch_size = batch_size
        self.seed = seed

    @property
    def batches_per_epoch(self) -> int:
        return (self.n_slices * self.patches_per_slice) // self.batch_size

    def epoch_coordinates(self, epoch: int) -> torch.Tensor:
        """Shuffled ``(slice, row, col)`` corners for one epoch, shape (batches, batch_size, 3), int64."""
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**64)  # any seed < 2**63
        n = self.n_slices * self.patches_per_slice
        slices = torch.arange(self.n_slices).repeat_interleave(self.patches_per_slice)
        rows = torch.randint(0, self.height - self.patch_size + 1, (n,), generator=gen)
        cols = torch.randint(0, self.width - self.patch_size + 1, (n,), generator=gen)
        coords = torch.stack([slices, rows, cols], dim=1)[torch.randperm(n, generator=gen)]
        usable = self.batches_per_epoch * self.batch_size
        return coords[:usable].reshape(self.batches_per_epoch, self.batch_size, 3)


def extract_patches(stack: torch.Tensor, coords: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut patches from a stack (slices, C, H, W) at corners (B, 3) -> (B, C, p, p).

    Works on any device; ``coords`` is moved to the stack's device.
    """
    coords = coords.to(stack.device)
    offs = torch.arange(patch_size, device=stack.device)
    rows = (coords[:, 1, None] + offs)[:, :, None]  # (B, p, 1)
    cols = (coords[:, 2, None] + offs)[:, None, :]  # (B, 1, p)
    patches = stack[coords[:, 0, None, None], :, rows, cols]  # (B, p, p, C)
    return patches.permute(0, 3, 1, 2).contiguous()
