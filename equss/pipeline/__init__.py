"""What the ``equss`` subcommands run: inputs for a run (:mod:`~equss.pipeline.inputs`),
checkpoints (:mod:`~equss.pipeline.checkpoint`), ``train``, ``eval`` (:mod:`~equss.pipeline.evaluate`),
``segment``, ``tune``, ``baseline`` (raw-feature k-means and linear probe)."""
