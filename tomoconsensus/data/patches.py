"""Random patch sampling for training (the paper's 96x96 patches, 40 per slice per epoch).

The patch locations of an epoch are a pure function of ``(seed, epoch)``, so a run resumed from a
checkpoint at step ``k`` of an epoch draws exactly the patches an uninterrupted run would have.
The same location is cut from x1, x2, x_est (and the reference) of a slice.
"""

from __future__ import annotations

import numpy as np
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


class StackPatches:
    """Patches of a batch cut from image stacks held in memory (CPU or GPU): name -> (slices, C, H, W)."""

    def __init__(self, stacks: dict[str, torch.Tensor], patch_size: int):
        self.stacks, self.patch_size = stacks, patch_size

    def __call__(self, coords: torch.Tensor, upcoming: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """name -> patches (B, C, p, p) at ``coords`` (B, 3); ``upcoming`` is ignored (nothing to read)."""
        return {name: extract_patches(stack, coords, self.patch_size) for name, stack in self.stacks.items()}

    def close(self) -> None:
        pass


class CachedPatches:
    """Patches cut from slices read on demand through a slice cache, with the next batch read in the background.

    ``cache`` is a :class:`tomoconsensus.data.lazy.SliceCache`. The slices a batch needs are stacked in
    slice order and the corners renumbered, so the patches equal those
    :class:`StackPatches` cuts from the whole stack (bit for bit). With ``prefetch``, the slices of
    ``upcoming`` (the next batch's corners) are read by one background thread while the step computes.
    """

    def __init__(self, cache, patch_size: int, prefetch: bool = True):
        from concurrent.futures import ThreadPoolExecutor

        self.cache, self.patch_size = cache, patch_size
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if prefetch else None
        self._pending = None

    def __call__(self, coords: torch.Tensor, upcoming: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self._pending is not None:
            self._pending.result()  # errors of the prefetch (an unreadable slice) surface here
            self._pending = None
        needed, local = torch.unique(coords[:, 0], return_inverse=True)
        entries = self.cache.get(needed.tolist())
        local_coords = torch.stack([local, coords[:, 1], coords[:, 2]], dim=1)
        out = {}
        for name in entries[0]:
            stack = torch.from_numpy(np.stack([e[name] for e in entries]))
            out[name] = extract_patches(stack, local_coords, self.patch_size)
        if self._pool is not None and upcoming is not None:
            self._pending = self._pool.submit(self.cache.get, torch.unique(upcoming[:, 0]).tolist())
        return out

    def close(self) -> None:
        if self._pool is not None:
            if self._pending is not None:
                self._pending.exception()
            self._pool.shutdown(wait=True)
