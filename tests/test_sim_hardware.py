"""Hardware spec loading and validation: one test per failure, every preset loads."""

import subprocess
import sys
import tomllib

import pytest

from simulator.hardware import HardwareSpecError, list_presets, load_hardware, spec_from_dict

GOOD = """
name = "t"
dataflow = "ws"
[pe_array]
rows = 4
cols = 4
clock_hz = 1e9
[[memory]]
name = "glb"
size_bytes = 1024
read_bw_bytes_per_cycle = 8
write_bw_bytes_per_cycle = 8
[[memory]]
name = "dram"
size_bytes = 1048576
read_bw_bytes_per_cycle = 4
write_bw_bytes_per_cycle = 4
energy_pj_per_bit = 8.0
"""


def _load(text, tmp_path):
    p = tmp_path / "hw.toml"
    p.write_text(text)
    return load_hardware(str(p))


def test_good_spec_loads(tmp_path):
    hw = _load(GOOD, tmp_path)
    assert hw.pe_array.rows == 4 and hw.sparsity.mode == "none" and hw.dram.name == "dram"
    assert hw.value_bytes == 2 and hw.glb.name == "glb"


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_loads(name):
    hw = load_hardware(name)
    assert hw.name == name
    assert hw.description


def test_required_presets_exist():
    assert {"dense-32x32", "skip-bitmask-32x32", "skip-csr-128x128", "eyeriss-v2-pe", "nm-2of4-tc"} <= set(list_presets())


def test_unknown_key_names_it_and_lists_allowed(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^pe_array\.rowz: unknown key; allowed keys: .*'rows'"):
        _load(GOOD.replace("rows = 4", "rowz = 4"), tmp_path)


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^colour: unknown key"):
        _load('colour = "red"\n' + GOOD, tmp_path)


def test_wrong_type(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^pe_array\.cols: must be a positive integer, got '4'"):
        _load(GOOD.replace("cols = 4", 'cols = "4"'), tmp_path)


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^pe_array\.cols"):
        _load(GOOD.replace("cols = 4", "cols = true"), tmp_path)


def test_non_positive_size(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^memory\[0\]\.size_bytes: must be a positive integer, got 0"):
        _load(GOOD.replace("size_bytes = 1024", "size_bytes = 0"), tmp_path)


def test_non_positive_rows(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^pe_array\.rows: must be a positive integer, got 0"):
        _load(GOOD.replace("rows = 4", "rows = 0"), tmp_path)


def test_non_positive_bandwidth(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^memory\[1\]\.read_bw_bytes_per_cycle: must be a positive"):
        _load(GOOD.replace("read_bw_bytes_per_cycle = 4", "read_bw_bytes_per_cycle = -1"), tmp_path)


def test_unknown_dataflow(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^dataflow: 'rs' is not one of \['ws', 'os', 'is'\]"):
        _load(GOOD.replace('dataflow = "ws"', 'dataflow = "rs"'), tmp_path)


def test_unknown_format_and_mode(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^weight_format\.kind: 'ellpack' is not one of"):
        _load(GOOD + '[weight_format]\nkind = "ellpack"\n', tmp_path)
    with pytest.raises(HardwareSpecError, match=r"^sparsity\.mode: 'prune' is not one of"):
        _load(GOOD + '[sparsity]\nmode = "prune"\n', tmp_path)
    with pytest.raises(HardwareSpecError, match=r"^number_format: 'fp8' is not one of"):
        _load('number_format = "fp8"\n' + GOOD, tmp_path)


def test_missing_required_key(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^pe_array\.clock_hz: missing required key"):
        _load(GOOD.replace("clock_hz = 1e9", ""), tmp_path)


def test_dram_needs_energy(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"energy_pj_per_bit"):
        _load(GOOD.replace("energy_pj_per_bit = 8.0", ""), tmp_path)


def test_bad_nm_and_activation_skipping(tmp_path):
    with pytest.raises(HardwareSpecError, match=r"^sparsity\.nm: N must be smaller than M"):
        _load(GOOD + '[sparsity]\nmode = "skip"\nnm = [4, 2]\n', tmp_path)
    with pytest.raises(HardwareSpecError, match=r"^sparsity\.operands: skipping 'activations'"):
        _load(GOOD + '[sparsity]\nmode = "skip"\noperands = ["weights", "activations"]\n', tmp_path)


def test_messages_are_one_line(tmp_path):
    for text in (GOOD.replace("rows = 4", "rows = 0"), "name = [", GOOD.replace("cols = 4", "cols = 4.5")):
        with pytest.raises(HardwareSpecError) as ei:
            _load(text, tmp_path)
        assert "\n" not in str(ei.value)


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(HardwareSpecError, match="malformed TOML"):
        _load("name = [", tmp_path)
    with pytest.raises(HardwareSpecError, match="nope.toml"):
        load_hardware(str(tmp_path / "nope.toml"))
    with pytest.raises(HardwareSpecError, match="no such preset"):
        load_hardware("no-such-preset")


def test_spec_from_dict_roundtrip():
    hw = load_hardware("skip-csr-128x128")
    assert spec_from_dict(tomllib.loads((hw and open(__import__("simulator").hardware.PRESET_DIR / "skip-csr-128x128.toml").read()))) == hw
    assert hw.to_dict()["pe_array"]["rows"] == 128


def test_import_simulator_does_not_import_torch():
    code = ("import sys, simulator, simulator.engine, simulator.update, simulator.memory; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
