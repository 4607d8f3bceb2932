"""How CT results are shown and measured: HU, the paper's [-160, 240] HU window, table rows.

Light on purpose (NumPy and scikit-image only): ``evaluate`` and ``report`` load it without torch.
All of it is the tomography layer's HU presentation (:class:`~tomoconsensus.tomo.presentation.HUPresentation`,
shared with spectral CT): CT stores one channel in HU/1000.
"""

from __future__ import annotations

from tomoconsensus.tomo.presentation import HUPresentation


class CTPresentation(HUPresentation):
    """Display, metrics and labels of CT slices (prepared units HU/1000, one channel)."""
