"""rigl-hw: sparse training (RigL and baselines), its FLOPs, traces, hardware simulation and export.

`import rigl_hw` is light: it imports neither torch nor numba. The numpy-only math lives in
`rigl_hw.layers`, `rigl_hw.distributions`, `rigl_hw.flops`, `rigl_hw.schedules`, `rigl_hw.trace`;
torch code (models, masking, methods, training) is imported only where it is used.
"""

__version__ = "0.1.0"
