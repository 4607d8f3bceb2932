"""Preparation pipelines, one per modality, shared by ``tomoconsensus prepare`` and ``tomoconsensus demo``.

Each assembles the modality object from resolved options (geometry, device, dose, SENSE settings,
...), takes a source of slices (read from the user's files, or the demo's embedded data) and writes
one prepared HDF5 file (:mod:`tomoconsensus.data.prepared`) with the attributes an independent check
needs. Layer: above ct/mr and data (it writes prepared files), below the networks and the commands.

* :mod:`tomoconsensus.pipelines.ct`: fan-beam CT from clean images (simulated dose) or measured sinograms.
* :mod:`tomoconsensus.pipelines.mr`: multi-coil Cartesian k-space, retrospectively undersampled (or a
  scanner's own lines).
* :mod:`tomoconsensus.pipelines.spectral`: photon-counting CT bin counts, one channel per bin.

The modules are separate so that preparing one modality does not import the other's libraries.
"""
