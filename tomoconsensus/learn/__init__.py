"""Training in its own wing: configure, check the data, train, validate and select, checkpoint, record the run.

* :mod:`~tomoconsensus.learn.config` -- :class:`TrainConfig` (every field checked once, in
  ``__post_init__``), its TOML file and the step-size schedule; no heavy imports.
* :mod:`~tomoconsensus.learn.data` -- which files, in memory or read on demand, their checks, patch sources.
* :mod:`~tomoconsensus.learn.memory` -- the memory a run needs, refused before anything is allocated.
* :mod:`~tomoconsensus.learn.loop` -- :func:`train`, the loop (:mod:`~tomoconsensus.learn.state` holds what
  its parts share, :mod:`~tomoconsensus.learn.selection` validation and model selection).
* :mod:`~tomoconsensus.learn.parallel` -- torchrun / DistributedDataParallel plumbing (training only).
* :mod:`~tomoconsensus.learn.checkpoints` -- checkpoint and model files; :mod:`~tomoconsensus.learn.runs`
  run folders and their lock; :mod:`~tomoconsensus.learn.runinfo` what a run was trained on.
* :mod:`~tomoconsensus.learn.trained` -- what inference needs from a run (:func:`load_trained`, the device,
  autocast): it imports neither the loop nor ``torch.distributed``.
* :mod:`~tomoconsensus.learn.cli` -- the command line's view: config fields -> flags.

Nothing is imported here, so that ``tomoconsensus.learn.trained`` stays light.
"""
