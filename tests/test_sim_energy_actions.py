"""Per-action energy table: 45 nm defaults, the Accelergy ERT reader, precedence, `hardware show`."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.energy import resolve_action_energies
from simulator.ert import instances_in_path, read_ert
from simulator.hardware import HardwareSpecError, load_hardware

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path("/work/.mirror/Accelergy-Project+timeloop-accelergy-exercises/repo")
EYERISS_ERT = ("3263d52:workspace/baseline_designs/example_designs/eyeriss_like/"
               "example_AlexNet_layer1_outputs/timeloop-mapper.ERT.yaml")


def horowitz_sram_pj_per_64bit(size_bytes):
    """Independent form of the SRAM law: 10 pJ at 8 KB, x2 per 4x size (exponent 1/2) below 32 KB."""
    return 10.0 * math.sqrt(size_bytes / 8192)


def test_defaults_equal_the_formulas():
    t = resolve_action_energies(load_hardware("dense-32x32"))
    rf, glb, dram = t.levels
    assert (rf.word_bits, rf.instances, glb.instances) == (16, 1024, 1)
    assert rf.read_pj == pytest.approx(horowitz_sram_pj_per_64bit(512) * 16 / 64)    # 0.625
    assert rf.write_pj == pytest.approx(rf.read_pj * 75.215 / 74.144)
    assert rf.update_pj == pytest.approx(rf.read_pj + rf.write_pj)
    assert glb.read_pj == pytest.approx(100.0 * 16 / 64)                              # 1 MB anchor
    assert dram.read_pj == dram.write_pj == pytest.approx(8.0 * 16)                   # LPDDR4 8 pJ/bit
    assert dram.update_pj == pytest.approx(256.0)
    assert t.mac_pj == pytest.approx(1.1 * (8 / 11) ** 2 + 0.9)                       # bf16
    assert t.gated_mac_pj == pytest.approx(t.mac_pj * 0.018 / 0.561)
    assert "Horowitz" in rf.sources["read_pj"] and "energy_pj_per_bit" in dram.sources["read_pj"]
    # bitmask metadata: 1-bit words at the data's per-bit energy; HBM2 3.9 pJ/bit
    b = resolve_action_energies(load_hardware("skip-bitmask-32x32"))
    assert b.levels[0].metadata_word_bits == 1
    assert b.levels[0].metadata_read_pj == pytest.approx(b.levels[0].read_pj / 16)
    assert resolve_action_energies(load_hardware("skip-csr-128x128")).levels[-1].read_pj == pytest.approx(3.9 * 16)


SPEC = """
name = "t"
number_format = "{fmt}"
[pe_array]
rows = 2
cols = 2
clock_hz = 1e9
[[memory]]
name = "spad"
size_bytes = {spad}
read_bw_bytes_per_cycle = 8
write_bw_bytes_per_cycle = 8
access_bytes = 2
{spad_extra}
[[memory]]
name = "buf"
size_bytes = 65536
read_bw_bytes_per_cycle = 8
write_bw_bytes_per_cycle = 8
access_bytes = 8
{buf_extra}
[[memory]]
name = "dram"
size_bytes = 1048576
read_bw_bytes_per_cycle = 4
write_bw_bytes_per_cycle = 4
energy_pj_per_bit = 8.0
{tail}
"""


def _hw(tmp_path, fmt="bf16", spad=32, spad_extra="", buf_extra="", tail=""):
    p = tmp_path / "hw.toml"
    p.write_text(SPEC.format(fmt=fmt, spad=spad, spad_extra=spad_extra, buf_extra=buf_extra, tail=tail))
    return load_hardware(p)


def test_register_file_regime_and_precisions(tmp_path):
    # 32 B and 64 B stores: the SRAM law (0.156, 0.221 pJ per 16 bits) is below the register-file floor
    for size in (32, 64):
        lv = resolve_action_energies(_hw(tmp_path, spad=size)).levels[0]
        assert lv.read_pj == lv.write_pj == pytest.approx(0.251)
        assert "regfile" in lv.sources["read_pj"]
    lv = resolve_action_energies(_hw(tmp_path, spad=128)).levels[0]
    assert lv.read_pj == pytest.approx(horowitz_sram_pj_per_64bit(128) / 4)     # 0.3125 > 0.251
    assert resolve_action_energies(_hw(tmp_path, fmt="fp32")).mac_pj == pytest.approx(4.6)
    i8 = resolve_action_energies(_hw(tmp_path, fmt="int8"))
    assert i8.mac_pj == pytest.approx(0.23) and i8.levels[0].read_pj == pytest.approx(0.251 / 2)


ERT = """ERT:
  version: 0.3
  tables:
  - name: system.chip.PE[0..3].spad
    actions:
    - {name: read, arguments: {address_delta: 0, data_delta: 0}, energy: 0.05}
    - {name: read, arguments: {address_delta: 1, data_delta: 1}, energy: 0.30}
    - {name: write, arguments: {address_delta: 1, data_delta: 1}, energy: 0.40}
    - {name: idle, arguments: null, energy: 0.01}
  - name: system.chip.glb
    actions:
    - {name: read, arguments: {address_delta: 1, data_delta: 1}, energy: 40.0}
    - {name: write, arguments: {address_delta: 1, data_delta: 1}, energy: 44.0}
    - {name: update, arguments: null, energy: 50.0}
  - name: system.chip.PE[0..3].mac
    actions:
    - {name: mac_random, arguments: null, energy: 2.5}
    - {name: mac_gated, arguments: null, energy: 0.1}
"""


def _ert_hw(tmp_path, **kw):
    (tmp_path / "t.ERT.yaml").write_text(kw.pop("ert", ERT))
    tail = '[energy]\nert = "t.ERT.yaml"\n' + kw.pop("energy_extra", "")
    return _hw(tmp_path, buf_extra=kw.pop("buf_extra", 'ert_name = "glb"'), tail=tail + kw.pop("tail", ""), **kw)


def test_ert_is_read_and_overrides_defaults(tmp_path):
    t = resolve_action_energies(_ert_hw(tmp_path))
    ert = read_ert(tmp_path / "t.ERT.yaml")
    assert ert.version == "0.3" and len(ert.components) == 3
    assert ert.find("spad") == ert.find("PE.spad") == "system.chip.PE[0..3].spad"
    assert ert.energy("system.chip.PE[0..3].spad", ("read",)) == 0.30
    spad, buf, dram = t.levels
    # timeloop rule: the largest read/write variant for every access, divided by the words per block
    assert spad.read_pj == spad.write_pj == pytest.approx(0.40)          # 16-bit block, 16-bit word
    assert buf.read_pj == buf.write_pj == pytest.approx(50.0 / 4)        # 64-bit block of 4 words
    assert spad.sources["read_pj"].startswith("ert:system.chip.PE[0..3].spad")
    assert spad.idle_pj_per_cycle == pytest.approx(0.01) and spad.leakage_pj_per_cycle == 0.0
    assert (t.mac_pj, t.gated_mac_pj) == (2.5, 0.1) and t.mac_source.endswith("mac_random")
    assert dram.read_pj == pytest.approx(128.0)                          # not in the ERT: the spec
    assert instances_in_path("system.chip.PE[0..3].spad") == 4


def test_ert_per_action_representative_and_idle_as_leakage(tmp_path):
    t = resolve_action_energies(_ert_hw(tmp_path, energy_extra='ert_representative = "per_action"\n'
                                                                "ert_idle_as_leakage = true\n"))
    spad, buf = t.levels[:2]
    assert (spad.read_pj, spad.write_pj) == (pytest.approx(0.30), pytest.approx(0.40))
    assert (buf.read_pj, buf.write_pj, buf.update_pj) == (pytest.approx(10.0), pytest.approx(11.0), pytest.approx(12.5))
    assert spad.leakage_pj_per_cycle == pytest.approx(0.01 * 4)          # idle x rows*cols instances


def test_spec_beats_ert(tmp_path):
    t = resolve_action_energies(_ert_hw(tmp_path, spad_extra="read_pj = 0.7\nupdate_pj = 2.0",
                                        buf_extra='ert_name = "glb"\nenergy_pj_per_access = 16.0',
                                        tail="[mac]\nenergy_pj = 3.0\n"))
    spad, buf = t.levels[:2]
    assert (spad.read_pj, spad.write_pj, spad.update_pj) == (0.7, pytest.approx(0.40), 2.0)
    assert spad.sources["read_pj"] == "spec read_pj" and spad.sources["write_pj"].startswith("ert:")
    assert buf.read_pj == buf.write_pj == pytest.approx(16.0 / 4)
    assert t.mac_pj == 3.0 and t.gated_mac_pj == pytest.approx(0.1)


@pytest.mark.parametrize("ert, buf_extra, needle", [
    (ERT, 'ert_name = "nope"', "no component 'nope'"),
    (ERT.replace("system.chip.glb", "system.chip.PE[0..3].glb_x.spad"), "", "ambiguous"),
    ("ERT: [1, 2", "", "not valid YAML"),
    ("tables: []\n", "", "no top-level 'ERT'"),
    (ERT.replace("energy: 44.0", "energy: -1"), "", "energy must be a non-negative number"),
])
def test_bad_ert_is_one_line_error(tmp_path, ert, buf_extra, needle):
    with pytest.raises(HardwareSpecError, match=needle) as e:
        resolve_action_energies(_ert_hw(tmp_path, ert=ert, buf_extra=buf_extra))
    assert "\n" not in str(e.value)


def test_missing_ert_file_and_cli_error(tmp_path):
    hw = _hw(tmp_path, tail='[energy]\nert = "absent.yaml"\n')
    with pytest.raises(HardwareSpecError, match="absent.yaml.*not found"):
        resolve_action_energies(hw)
    r = subprocess.run([sys.executable, "-m", "rigl_hw", "hardware", "show", str(tmp_path / "hw.toml")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("rigl-hw: error: energy.ert: file") and r.stderr.count("\n") == 1


def test_hardware_show_prints_the_table(tmp_path):
    from rigl_hw.cli import main

    _ert_hw(tmp_path)
    env_path = str(tmp_path / "hw.toml")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["hardware", "show", env_path]) == 0
    text = buf.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("buf "))
    assert row.split()[:6] == ["buf", "16", "1", "12.5", "12.5", "25"] and "ert:system.chip.glb" in row
    assert "2.5 pJ per MAC, gated 0.1 pJ" in text
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["hardware", "show", env_path, "--json"]) == 0
    d = json.loads(buf.getvalue())
    e = d["energy"]
    assert e["ert"] == "t.ERT.yaml" and e["ert_file"].endswith("t.ERT.yaml")
    assert [lv["name"] for lv in e["levels"]] == ["spad", "buf", "dram"]
    assert e["levels"][1]["read_pj"] == pytest.approx(12.5) and e["levels"][0]["instances"] == 4
    assert e["mac"]["energy_pj"] == 2.5 and e["levels"][2]["sources"]["read_pj"].startswith("spec")


EYERISS = """
name = "eyeriss-ert-check"
number_format = "bf16"
[pe_array]
rows = 12
cols = 14
clock_hz = 1e9
[mac]
ert_name = "mac"
[energy]
ert = "eyeriss.ERT.yaml"
""" + "".join(f"""
[[memory]]
name = "{n}"
size_bytes = {s}
read_bw_bytes_per_cycle = 2
write_bw_bytes_per_cycle = 2
access_bytes = {a}
instances = {i}
word_bits = 16
""" for n, s, a, i in (("psum_spad", 32, 2, 168), ("weights_spad", 384, 2, 168), ("ifmap_spad", 24, 2, 168),
                       ("shared_glb", 131072, 8, 1))) + """
[[memory]]
name = "DRAM"
size_bytes = 1073741824
read_bw_bytes_per_cycle = 8
write_bw_bytes_per_cycle = 8
access_bytes = 8
word_bits = 16
energy_pj_per_access = 512.0
"""


def test_real_eyeriss_ert_matches_timeloop_stats(tmp_path):
    if not MIRROR.is_dir():
        pytest.skip(f"the timeloop-accelergy-exercises mirror is absent ({MIRROR})")
    text = subprocess.run(["git", "--git-dir", str(MIRROR), "show", EYERISS_ERT], capture_output=True,
                          text=True, check=True).stdout
    (tmp_path / "eyeriss.ERT.yaml").write_text(text)
    (tmp_path / "hw.toml").write_text(EYERISS)
    t = resolve_action_energies(load_hardware(tmp_path / "hw.toml"))
    # the exercise's timeloop-mapper.stats.txt, "Energy (per-scalar-access)" and "Energy-per-op"
    got = {lv.name: round(lv.read_pj, 2) for lv in t.levels}
    assert got == {"psum_spad": 0.25, "weights_spad": 1.59, "ifmap_spad": 0.24, "shared_glb": 18.80, "DRAM": 128.0}
    assert round(t.level("shared_glb").write_pj * 4, 2) == 75.22          # "Vector access energy"
    assert t.level("DRAM").read_pj * 4 == 512.0
    assert round(t.mac_pj, 2) == 2.20 and t.gated_mac_pj == pytest.approx(0.103)
    assert t.level("psum_spad").sources["read_pj"].startswith("ert:system.eyeriss.PE[0..167].psum_spad")
    # the DRAM level is given per access in the spec (512 pJ per 64 bits, as the ERT): spec wins
    assert t.level("DRAM").sources["read_pj"].startswith("spec energy_pj_per_access")


def test_real_eyeriss_ert_per_action_representative(tmp_path):
    if not MIRROR.is_dir():
        pytest.skip(f"the timeloop-accelergy-exercises mirror is absent ({MIRROR})")
    text = subprocess.run(["git", "--git-dir", str(MIRROR), "show", EYERISS_ERT], capture_output=True,
                          text=True, check=True).stdout
    (tmp_path / "eyeriss.ERT.yaml").write_text(text)
    (tmp_path / "hw.toml").write_text(EYERISS.replace('ert = "eyeriss.ERT.yaml"',
                                                      'ert = "eyeriss.ERT.yaml"\nert_representative = "per_action"\n'
                                                      "ert_idle_as_leakage = true"))
    t = resolve_action_energies(load_hardware(tmp_path / "hw.toml"))
    glb = t.level("shared_glb")
    # the ERT's largest variants: read 74.144, write 75.215 pJ per 4-word block (address_delta 32, new data)
    assert (glb.read_pj, glb.write_pj) == (pytest.approx(74.144 / 4), pytest.approx(75.215 / 4))
    assert glb.update_pj == pytest.approx((74.144 + 75.215) / 4)
    # idle: 0.018 pJ per instance and cycle for psum_spad, x 168 PEs
    assert t.level("psum_spad").leakage_pj_per_cycle == pytest.approx(0.018 * 168)
