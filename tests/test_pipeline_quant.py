"""A quantization-aware student through the whole pipeline: QAT with KD, bit-exact hls4ml
C simulation and bit-exact RTL emulation against the integer reference."""
import json

import pytest

from edgekd.cli import main
from test_pipeline import _make_npz  # tests/ is on sys.path (pytest rootdir-less "prepend" import mode)

RECIPE = """
name: q-e2e
seeds: [0]
data:
  kind: npz
  path: cells.npz
  teacher_size: 32
  student_size: 24
  normalize: {mean: 0.4, std: 0.2}
teacher:
  arch: resnet-mini
  params: {widths: [8, 16], blocks: [1, 1]}
  train: {epochs: 4, batch_size: 32, optim: {lr: 0.01}}
students:
  - name: mlpq
    arch: mlp-q
    params: {hidden: 8, pool: 4, weight_bits: 6, act_bits: 6}
    loss: [{ce: 0.5}, {kd: {weight: 0.5, tau: 2}}]
    train: {epochs: 4, batch_size: 32, optim: {lr: 0.01}}
export:
  hls: {io_type: io_parallel, n_check: 60}
  rtl: {n_check: 60}
profile: {batch_sizes: [1], runs: 50, warmup: 5}
"""


@pytest.mark.hls
def test_quantized_student_is_bit_exact_in_firmware_and_rtl(tmp_path, capsys):
    _make_npz(tmp_path / "cells.npz")
    (tmp_path / "r.yaml").write_text(RECIPE)
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "r.yaml"), "--out", str(out), "--no-progress"]) == 0
    rep = json.loads((out / "report.json").read_text())
    arts = {a["target"]: a for a in rep["artifacts"] if a["model"] == "mlpq"}
    assert set(arts) >= {"onnxruntime", "fpga-hls", "fpga-rtl"}
    for t in ("fpga-hls", "fpga-rtl"):
        f = arts[t]["fidelity"]
        assert arts[t]["status"] == "ok" and f["exact_match_rate"] == 1.0 and f["max_abs_diff"] == 0.0, t
        assert f["n_inputs"] == 60
    fpga = {f["target"]: f for f in rep["fpga"] if f["model"] == "mlpq"}
    assert fpga["fpga-rtl"]["method"] == "simulated" and fpga["fpga-rtl"]["latency_cycles"] >= 1
    assert fpga["fpga-hls"]["method"] == "estimated"
    md = (out / "report.md").read_text()
    assert "## FPGA" in md and "simulated" in md
    assert "plots/fpga.png" in md and (out / "plots" / "fpga.png").stat().st_size > 5000  # intervals drawn

    capsys.readouterr()
    assert main(["profile", str(out), "--target", "fpga-rtl"]) == 0
    table = capsys.readouterr().out
    assert "mlpq" in table and "simulated" in table and "cyc" in table
    assert main(["profile", str(out), "--target", "fpga-hls"]) == 0
    assert "estimated" in capsys.readouterr().out
