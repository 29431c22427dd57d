"""Update-fraction schedules, update steps and LR schedules."""

import math

import pytest

from rigl_hw.schedules import (CosineLR, ScheduleError, StepLR, UpdateSchedule, changed_per_update, n_changed,
                               update_fraction)


def test_cosine_fraction_values():
    assert update_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert update_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert update_fraction(25, 0.3, 100) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert update_fraction(100, 0.3, 100) == 0.0


def test_other_decays():
    assert update_fraction(40, 0.2, 100, "constant") == pytest.approx(0.2)
    assert update_fraction(50, 0.4, 100, "inverse_power", power_k=3) == pytest.approx(0.4 * 0.125)


def test_update_steps_and_counts():
    s = UpdateSchedule(delta_t=10, t_end=45, alpha=0.3)
    assert s.update_steps(100).tolist() == [10, 20, 30, 40]
    assert [t for t in range(100) if s.is_update_step(t)] == [10, 20, 30, 40]
    k = changed_per_update(s, [100, 7], 100)
    expected = [[n_changed(s.fraction(t), n) for n in (100, 7)] for t in (10, 20, 30, 40)]
    assert k.tolist() == expected
    assert k[0, 0] == math.floor(0.15 * (1 + math.cos(math.pi * 10 / 45)) * 100)


@pytest.mark.parametrize("kw, msg", [({"delta_t": 0}, "delta_t"), ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"),
                                     ({"decay": "linear"}, "decay"), ({"t_end": 500}, "t_end")])
def test_bad_schedule(kw, msg):
    with pytest.raises(ScheduleError, match=msg):
        UpdateSchedule(**{"t_end": 150, **kw}).validate(total_steps=200)


def test_multiplier_scales_anchors():
    s = UpdateSchedule(delta_t=100, t_end=25_000).scaled(5)
    assert s.t_end == 125_000 and s.delta_t == 100
    lr = StepLR(1.6, warmup_steps=1600, milestones=(9600, 22400, 28800)).scaled(5)
    assert lr.milestones == (48000, 112000, 144000) and lr.warmup_steps == 8000
    assert lr(0) == pytest.approx(1.6 / 8000)
    assert lr(50_000) == pytest.approx(0.16)
    c = CosineLR(1.0, total_steps=100)
    assert c(0) == pytest.approx(1.0) and c(50) == pytest.approx(0.5) and c(100) == pytest.approx(0.0)
