"""A toy modality, photon/event counting, as a tomoconsensus plugin installed from outside the repository.

Measurement: counts N ~ Poisson(t * lambda) per pixel, for an activity image lambda (events per
second) and a scan time t (s). Split: every event goes to half 1 or half 2 with probability 1/2
(binomial thinning); the halves are *independent* Poisson(t lambda / 2) images. Reconstruction of a
half: 2 N_half / t, linear and unbiased for lambda; x_est = N / t. Prepared units: events per second / 10.

The package adds itself to ``tomoconsensus`` through the entry point of its ``pyproject.toml``::

    [project.entry-points."tomoconsensus.modalities"]
    counting = "toy_counting.plugin:PLUGIN"

:mod:`.modality` (split, reconstruction), :mod:`.presentation` (units, metrics, table rows),
:mod:`.cli` (``tomoconsensus prepare counting``), :mod:`.plugin` (where those parts live).
"""
