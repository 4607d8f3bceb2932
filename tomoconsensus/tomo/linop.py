"""One linear-operator interface for the tomography layer and the modalities (``docs/conventions.md``).

In the spirit of SigPy's ``Linop`` and deepinv's ``Physics``: an operator ``A`` maps arrays of shape
``ishape`` to arrays of shape ``oshape``,

    forward(x) = A x,        adjoint(y) = A^H y   (the transpose for real operators),

with ``<A x, y> = <x, A^H y>``. Every projector, FBP, the TV gradient and the MR forward operator
implements it. Attributes:

* ``ishape``, ``oshape``: tuples of ints (one image or one sinogram; operators that take a batch say so);
* ``dtype``: the NumPy dtype the operator computes in and returns (float32 for the projectors and FBP,
  the constructor's for the TV gradient and the MR operator);
* ``device``: where it computes, ``str(device)`` is ``"cpu"`` or ``"cuda[:n]"``; back ends are chosen in
  :mod:`tomoconsensus.tomo.backends`;
* ``native``: ``"numpy"`` or ``"torch"``, the array type it computes with. ``forward`` and ``adjoint``
  take NumPy arrays and torch tensors alike and return the type they were given (a tensor on the
  operator's device for a torch operator, on the tensor's own device otherwise).

An operator without an adjoint (FBP: a filtered, weighted backprojection whose transpose is not
implemented) raises :class:`NotImplementedError` from :meth:`Linop.adjoint`, naming itself and the
operator to use instead; ``has_adjoint`` says so beforehand.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_tensor(x: Any) -> bool:
    """True for a torch tensor (without importing torch when it is not loaded)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array of ``x`` (a tensor is detached and copied to the host)."""
    return x.detach().cpu().numpy() if is_tensor(x) else np.asarray(x)


class Linop:
    """Base class of the package's linear operators (module docstring).

    Subclasses set ``ishape``, ``oshape``, ``dtype``, ``device`` and ``native``, and implement
    ``_forward`` (and ``_adjoint`` where the adjoint exists) on their native array type.
    """

    ishape: tuple[int, ...]
    oshape: tuple[int, ...]
    dtype: np.dtype
    device: Any = "cpu"
    native: str = "numpy"
    has_adjoint: bool = True
    #: what to use where the adjoint is not implemented (named in the error)
    adjoint_instead: str = ""

    def forward(self, x):
        """``A x``: ``x`` of shape ``ishape`` (NumPy or torch) -> shape ``oshape``, of the same type."""
        return self._apply(self._forward, x)

    def adjoint(self, y):
        """``A^H y``: ``y`` of shape ``oshape`` (NumPy or torch) -> shape ``ishape``, of the same type."""
        if not self.has_adjoint:
            instead = f"; use {self.adjoint_instead}" if self.adjoint_instead else ""
            raise NotImplementedError(f"{type(self).__name__}: the adjoint is not implemented{instead}")
        return self._apply(self._adjoint, y)

    def _forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}._forward")

    def _adjoint(self, y):
        raise NotImplementedError(f"{type(self).__name__}._adjoint")

    def _apply(self, method, x):
        tensor = is_tensor(x)
        if self.native == "torch":
            return method(x) if tensor else to_numpy(method(x))
        out = method(to_numpy(x))
        if not tensor:
            return out
        import torch

        return torch.from_numpy(np.ascontiguousarray(out)).to(x.device)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.ishape} -> {self.oshape}, {np.dtype(self.dtype).name}, "
                f"{self.device}>")


def operator_classes() -> list[type[Linop]]:
    """Every concrete :class:`Linop` subclass defined so far (those of the imported modules), by name."""
    found, todo = [], list(Linop.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")
