"""Crash safety (SIGKILL mid-training, then --resume) and the bad-input matrix via the CLI."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from edgekd.cli import main

RECIPE = """
name: crash
seeds: [0]
data:
  kind: npz
  path: d.npz
  teacher_size: 32
  student_size: 24
  split: {val: 0.2, test: 0.2, seed: 1}
teacher:
  arch: resnet-mini
  params: {widths: [8, 16], blocks: [1, 1]}
  train: {epochs: 6, batch_size: 16}
students:
  - name: s
    arch: mlp
    params: {hidden: 8, pool: 4}
    loss: [{ce: 0.5}, {kd: {weight: 0.5, tau: 2}}]
    train: {epochs: 3, batch_size: 16}
export:
  hls: {enabled: false}
profile: {targets: [cpu-torch], batch_sizes: [1], runs: 20, warmup: 2}
"""


@pytest.fixture
def recipe(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 32, 32), dtype=np.uint8)
    y = (x[:, 8:24, 8:24].mean((1, 2)) > x.mean((1, 2))).astype(int)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    return p


def _run(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "edgekd", "run", *args, "--no-progress", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_sigkill_then_resume_equals_uninterrupted_run(recipe, tmp_path):
    ref = tmp_path / "ref"
    p = _run([str(recipe), "--out", str(ref)])
    assert p.wait(timeout=600) == 0, p.stderr.read()

    out = tmp_path / "killed"
    p = _run([str(recipe), "--out", str(out)])
    ck = out / "checkpoints" / "teacher-seed0.pt"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if ck.is_file():
            try:
                if torch.load(ck, weights_only=True)["epoch"] >= 2:
                    break
            except Exception:  # a torn read is impossible (atomic rename), but be patient anyway
                pass
        time.sleep(0.05)
    assert p.poll() is None, "run finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed_at = torch.load(ck, weights_only=True)["epoch"]
    assert 2 <= killed_at < 6
    assert not (out / "report.json").exists()

    p = _run([str(recipe), "--out", str(out), "--resume"])
    assert p.wait(timeout=600) == 0, p.stderr.read()
    assert not list(out.rglob(".*.tmp"))  # temp files a kill may leave are swept on resume
    for name in ("teacher-seed0.pt", "s-seed0.pt"):
        a, b = _weights(ref / "checkpoints" / name), _weights(out / "checkpoints" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    rep = json.loads((out / "report.json").read_text())
    teacher = [m for m in rep["models"] if m["name"] == "teacher"][0]
    assert teacher["resumed_from_epoch"] == killed_at


def _expect_user_error(args, capsys, *needles):
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.count("edgekd: error:") == 1
    for n in needles:
        assert n in err, err
    return err


def test_bad_inputs_give_one_clear_message(recipe, tmp_path, capsys):
    d = tmp_path
    # malformed YAML, unknown key, wrong type
    (d / "m.yaml").write_text("students: [\n")
    _expect_user_error(["run", str(d / "m.yaml")], capsys, "malformed YAML", "m.yaml:")
    (d / "u.yaml").write_text(RECIPE.replace("seeds: [0]", "seeds: [0]\nsneds: 3"))
    _expect_user_error(["run", str(d / "u.yaml")], capsys, "sneds", "unknown key")
    (d / "t.yaml").write_text(RECIPE.replace("epochs: 6", "epochs: six"))
    _expect_user_error(["run", str(d / "t.yaml")], capsys, "teacher.train.epochs", "'six'")
    # missing / corrupted data file
    (d / "f.yaml").write_text(RECIPE.replace("d.npz", "nothere.npz"))
    _expect_user_error(["run", str(d / "f.yaml")], capsys, "data.path", "nothere.npz")
    (d / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (d / "c.yaml").write_text(RECIPE.replace("d.npz", "bad.npz"))
    _expect_user_error(["run", str(d / "c.yaml"), "--out", str(d / "c-run")], capsys, "bad.npz", "corrupted")
    # images with NaN
    x = np.random.default_rng(0).random((40, 32, 32)).astype(np.float32)
    x[3, 4, 5] = np.nan
    np.savez(d / "nan.npz", x=x, y=np.arange(40) % 2)
    (d / "n.yaml").write_text(RECIPE.replace("d.npz", "nan.npz"))
    _expect_user_error(["run", str(d / "n.yaml"), "--out", str(d / "n-run")], capsys, "NaN or Inf", "1 image")
    # a class filter that leaves no samples
    np.savez(d / "cls.npz", x=np.zeros((40, 32, 32), np.uint8), y=np.zeros(40, int),
             classes=np.array(["a", "b", "c"]))
    (d / "k.yaml").write_text(RECIPE.replace("d.npz", "cls.npz").replace("  kind: npz", "  kind: npz\n  classes: [c, b]"))
    _expect_user_error(["run", str(d / "k.yaml"), "--out", str(d / "k-run")], capsys, "leaves no samples")


def test_checkpoint_of_another_architecture_is_refused_and_kept(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out), "--no-progress"]) == 0
    ck = out / "checkpoints" / "s-seed0.pt"
    before = ck.read_bytes()
    report_before = (out / "report.json").read_bytes()
    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.replace("arch: mlp", "arch: cellsort-cnn").replace("params: {hidden: 8, pool: 4}", "params: {}"))
    # same run directory, different recipe: refused before anything is touched
    _expect_user_error(["run", str(other), "--out", str(out), "--resume"], capsys, "different recipe")
    assert ck.read_bytes() == before and (out / "report.json").read_bytes() == report_before


def test_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
    from edgekd.config.schema import HlsExportConfig
    from edgekd.errors import ToolMissingError
    from edgekd.export import hls
    from edgekd.nets import create_net

    monkeypatch.setenv("PATH", str(tmp_path))  # no g++ on this PATH
    m = create_net("mlp", num_classes=2, in_channels=1, input_size=24, params={"hidden": 4})
    x = torch.randn(8, 1, 24, 24)
    with pytest.raises(ToolMissingError) as e:
        hls.export_and_check(m, "m", x, x, tmp_path, HlsExportConfig(), log=lambda s: None)
    assert "g++" in e.value.message and "apt-get install g++" in e.value.message


def test_replace_dir_swaps_in_a_complete_folder_only(tmp_path):
    from edgekd.runs import replace_dir

    final, new = tmp_path / "m-hls", tmp_path / ".m-hls.work"
    final.mkdir()
    (final / "good.txt").write_text("good")
    new.mkdir()
    (new / "better.txt").write_text("better")
    replace_dir(new, final)
    assert [p.name for p in final.iterdir()] == ["better.txt"] and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-hls"]  # no .old folder left behind
    # nothing complete to move in: the folder in place is not touched
    with pytest.raises(FileNotFoundError, match="left as it was"):
        replace_dir(tmp_path / "missing", final)
    assert (final / "better.txt").read_text() == "better"
