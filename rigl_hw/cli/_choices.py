"""The closed sets behind `choices=` of the CLI's options, spelled out so that `rigl-hw --help` stays fast.

Each tuple mirrors the constant of the package that owns it (named beside it); importing those
would load numpy, torch or numba just to build the parser. tests/test_cli_options.py asserts that
every tuple here equals its source, so the two cannot drift apart.
"""

from __future__ import annotations

DISTRIBUTIONS = ("uniform", "er", "erk")                       # rigl_hw.distributions.DISTRIBUTIONS
METHODS = ("dense", "static", "snip", "set", "small_dense", "rigl", "snfs", "pruning")  # rigl_hw.flops.METHODS
SYNTH_METHODS = ("rigl", "set", "snfs", "static")              # rigl_hw.trace_synth.SYNTH_METHODS
DECAY_SCHEDULES = ("cosine", "constant", "inverse_power")      # rigl_hw.schedules.DECAY_SCHEDULES
DATASETS = ("digits", "synthetic", "bytes", "cifar10")         # rigl_hw.data.DATASETS
OPTIMIZERS = ("sgd", "adam", "adamw")                          # rigl_hw.train_config.OPTIMIZERS
LR_SCHEDULES = ("cosine", "step", "constant")                  # rigl_hw.train_config.LR_SCHEDULES
DEVICES = ("auto", "cpu", "cuda")                              # rigl_hw.device.DEVICES
SIM_MODES = ("real", "statistical", "compare")                 # simulator.engine.MODES + "compare"
MAPPINGS = ("per-layer", "per-snapshot", "fixed")              # simulator.mapped.MAPPINGS
OBJECTIVES = ("latency", "energy", "edp")                      # simulator.mapper.OBJECTIVES
PASSES = ("forward", "backward_data", "backward_weight")       # simulator.nest.PASSES
EXPORT_FORMATS = ("dense", "sparse")                           # export.onnx_export.FORMATS
STUDY_NAMES = ("uniform-vs-erk", "training-cost", "update-interval", "methods-small", "all")  # studies.index.STUDIES + all
