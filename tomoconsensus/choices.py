"""The closed sets of names a user can choose from, in one place (no heavy imports).

Devices are in :mod:`tomoconsensus.devices`. The command line takes its ``choices`` from here, so argparse
rejects a wrong name before any work is done; the library checks the same sets.
"""

from __future__ import annotations

#: Training methods (:mod:`tomoconsensus.methods`).
METHODS = ("consensus", "noise2noise", "noise2clean", "distill")
#: Output variants per method, the default first (:func:`tomoconsensus.methods.output`).
VARIANTS = {"consensus": ("mean", "z", "f1", "full"), "noise2noise": ("mean", "full", "f1"), "noise2clean": ("full",),
            "distill": ("full",)}
#: Every variant name of any method (what ``denoise --variant`` accepts before the run is known).
ALL_VARIANTS = tuple(dict.fromkeys(v for vs in VARIANTS.values() for v in vs))
#: Prepared-file attribute ``mean_input`` = this: the linear reconstruction of all the data is x_est itself,
#: not (x1 + x2) / 2 (count-domain splits whose halves are logged apart: CT and spectral thinning); the
#: ``mean`` output variant then takes x_est (:func:`tomoconsensus.methods.output`).
MEAN_INPUT_X_EST = "x_est"
