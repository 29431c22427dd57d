"""rigl-hw simulator: time, traffic and energy of sparse training steps on a simulated accelerator.

numpy + Numba + pandas only (never torch). Entry points: `load_hardware`, `simulate_step`,
`simulate_run`; the model is described in docs/simulator.md.
"""

from simulator.hardware import HardwareSpec, HardwareSpecError, list_presets, load_hardware

__all__ = ["HardwareSpec", "HardwareSpecError", "list_presets", "load_hardware", "simulate_step",
           "simulate_run"]


def __getattr__(name: str):
    if name in ("simulate_step", "simulate_run", "StepResult", "RunResult"):
        from simulator import engine

        return getattr(engine, name)
    raise AttributeError(name)
