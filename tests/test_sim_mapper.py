"""The mapper: brute force on small spaces, capacities, compulsory traffic, densities, Timeloop bound."""

from __future__ import annotations

import itertools
import math

import pytest

from simulator.access import check_mapping, evaluate
from simulator.hardware import load_hardware, spec_from_dict
from simulator.mapper import clear_cache, map_layer, objective_value
from simulator.nest import LevelMapping, Mapping, MappingError, Problem
from simulator.tiles import tensor_size

from sim_helpers import prime_factors

SMALL = {
    "name": "small", "number_format": "bf16",
    "pe_array": {"rows": 2, "cols": 2, "clock_hz": 1e9, "fill_drain": False},
    "memory": [
        {"name": "reg", "size_bytes": 12, "read_bw_bytes_per_cycle": 8, "write_bw_bytes_per_cycle": 4,
         "instances": 4, "mesh_x": 2, "tensors": ["weights", "outputs"]},
        {"name": "glb", "size_bytes": 96, "read_bw_bytes_per_cycle": 4, "write_bw_bytes_per_cycle": 2},
        {"name": "dram", "size_bytes": 1 << 20, "read_bw_bytes_per_cycle": 1, "write_bw_bytes_per_cycle": 1,
         "energy_pj_per_bit": 8.0},
    ],
}
SLOTS = [(0, "t"), (1, "t"), (1, "X"), (1, "Y"), (2, "t")]


def all_mappings(problem: Problem, hw):
    """Every mapping of the small hardware: factor placements x loop orders x bypass sets."""
    factors = [(d, f) for d, size in problem.dims.items() for f in prime_factors(size)]
    subsets = [tuple(c) for k in range(4) for c in itertools.combinations(("weights", "inputs", "outputs"), k)]
    reg_subsets = [k for k in subsets if "inputs" not in k]
    seen = set()
    for place in itertools.product(SLOTS, repeat=len(factors)):
        t = {i: {} for i in range(3)}
        s = {}
        for (d, f), (lv, kind) in zip(factors, place):
            if kind == "t":
                t[lv][d] = t[lv].get(d, 1) * f
            else:
                s[(d, kind)] = s.get((d, kind), 1) * f
        key = (tuple(sorted((i, tuple(sorted(v.items()))) for i, v in t.items())), tuple(sorted(s.items())))
        if key in seen:
            continue
        seen.add(key)
        spatial = tuple((d, b, a) for (d, a), b in sorted(s.items()))
        for o0 in itertools.permutations(t[0]):
            for o1 in itertools.permutations(t[1]):
                for o2 in itertools.permutations(t[2]):
                    for k1 in subsets:
                        for k2 in reg_subsets:
                            yield Mapping((
                                LevelMapping("dram", tuple((d, t[0][d]) for d in o0)),
                                LevelMapping("glb", tuple((d, t[1][d]) for d in o1), spatial, k1),
                                LevelMapping("reg", tuple((d, t[2][d]) for d in o2), (), k2)))


@pytest.mark.parametrize("problem", [
    Problem(M=2, P=3, R=2, name="conv-1d"),
    Problem(C=2, Q=2, S=2, stride=(1, 2), pass_name="backward_data", name="bwd"),
])
def test_exhaustive_mapper_equals_brute_force(problem):
    hw = spec_from_dict(SMALL)
    evals = []
    for m in all_mappings(problem, hw):
        try:
            evals.append(evaluate(problem, hw, m))
        except MappingError:
            continue
    assert len(evals) > 100
    for objective in ("latency", "energy", "edp"):
        best = min(objective_value(ev, objective) for ev in evals)
        got = map_layer(problem, hw, objective, exhaustive=True, use_cache=False)
        assert objective_value(got.evaluation, objective) == pytest.approx(best, rel=1e-12)
        # the default (pruned, heuristic) search is never better than the optimum
        heur = map_layer(problem, hw, objective, use_cache=False)
        assert objective_value(heur.evaluation, objective) >= best * (1 - 1e-12)


RESNET = [
    Problem(N=4, M=64, C=64, P=56, Q=56, R=3, S=3, name="layer1.0.conv2"),
    Problem(N=4, M=512, C=512, P=7, Q=7, R=3, S=3, name="layer4.0.conv2"),
    Problem(N=4, M=256, C=128, P=28, Q=28, stride=(2, 2), name="layer2.0.downsample"),
]


@pytest.mark.parametrize("hw_name", ["dense-32x32", "skip-bitmask-32x32", "nm-2of4-tc", "eyeriss-like"])
@pytest.mark.parametrize("pass_name", ["forward", "backward_data", "backward_weight"])
def test_chosen_mappings_fit_and_move_each_tensor_at_least_once(hw_name, pass_name):
    hw = load_hardware(hw_name)
    for base in RESNET[:2] if hw_name != "eyeriss-like" else RESNET[1:2]:
        p = Problem(**{**base.dims, "stride": base.stride}, pass_name=pass_name, name=base.name)
        dens = {"weights": 0.3} if hw.sparsity.mode != "none" else {}
        r = map_layer(p, hw, "latency", densities=dens, use_cache=False)
        check_mapping(p, hw, r.mapping, dens)          # every tile within its capacity (raises otherwise)
        dram = r.evaluation.levels[0].counts
        for role in ("weights", "inputs"):
            space = p.space_of(role)
            floor = tensor_size(p, space)
            if space == "W" and hw.weight_format.kind != "dense" and dens:
                floor *= dens["weights"]
            assert dram[role].reads >= floor * (1 - 1e-9), (role, dram[role].reads, floor)
        assert dram["outputs"].updates >= tensor_size(p, p.space_of("outputs"))
        assert r.evaluation.cycles >= p.macs / (hw.pe_array.rows * hw.pe_array.cols) * (
            dens.get("weights", 1.0) if hw.sparsity.mode == "skip" else 1.0) - 1e-6


def test_density_one_equals_dense_and_monotone():
    hw = load_hardware("skip-bitmask-32x32")
    p = RESNET[0]
    dense = map_layer(p, hw, "latency", use_cache=False)
    one = map_layer(p, hw, "latency", densities={"weights": 1.0}, use_cache=False)
    assert (one.evaluation.cycles, one.evaluation.energy_pj) == (dense.evaluation.cycles, dense.evaluation.energy_pj)
    # the mapping chosen once per layer, evaluated at each density (RigL's default): monotone
    prev = None
    for d in (0.05, 0.1, 0.2, 0.5, 0.8, 1.0):
        ev = evaluate(p, hw, dense.mapping, densities={"weights": d})
        if prev is not None:
            assert ev.cycles >= prev.cycles and ev.energy_pj >= prev.energy_pj
            assert ev.levels[0].read_bytes >= prev.levels[0].read_bytes
        prev = ev
    assert prev.cycles == dense.evaluation.cycles


def test_mapper_monotone_in_density_on_exhaustive_space():
    hw = spec_from_dict({**SMALL, "sparsity": {"mode": "skip", "operands": ["weights"]},
                         "weight_format": {"kind": "bitmask"}})
    p = Problem(M=2, P=3, R=2)
    vals = [map_layer(p, hw, "latency", densities={"weights": d}, exhaustive=True, use_cache=False).evaluation
            for d in (0.25, 0.5, 1.0)]
    assert vals[0].cycles <= vals[1].cycles <= vals[2].cycles
    evals = [map_layer(p, hw, "energy", densities={"weights": d}, exhaustive=True, use_cache=False).evaluation
             for d in (0.25, 0.5, 1.0)]
    assert evals[0].energy_pj <= evals[1].energy_pj <= evals[2].energy_pj


def test_mapper_finds_timeloop_cycles_on_eyeriss():
    hw = load_hardware("eyeriss-like")
    r = map_layer(Problem(C=3, M=96, R=11, S=11, P=55, Q=55, stride=(4, 4)), hw, "latency", use_cache=False)
    assert r.evaluation.cycles <= 798_600
    assert r.evaluation.macs == 105_415_200


def test_cache_reuses_one_search():
    clear_cache()
    hw = load_hardware("dense-32x32")
    a = map_layer(RESNET[1], hw)
    b = map_layer(Problem(**RESNET[1].dims, name="another name, same shape"), hw)
    assert not a.cached and b.cached and b.mapping == a.mapping and b.evaluated == 0


def test_no_legal_mapping_is_one_line_error():
    tiny = {**SMALL, "memory": [dict(SMALL["memory"][0], size_bytes=1), *SMALL["memory"][1:]],
            "mapspace": {"level": [{"name": "reg", "keep": ["weights", "outputs"]}]}}
    hw = spec_from_dict(tiny)
    with pytest.raises(MappingError, match="no mapping .* fits"):
        map_layer(Problem(M=2, C=2), hw, use_cache=False)
