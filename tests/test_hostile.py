"""What a hostile user tries (issue 12): real processes, real signals, real files, real tmpfs.

Every CLI call here runs `python -m edgekd` in its own process and its output is searched
for "Traceback": a user error is one clear message and exit 2, never a stack trace.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = """
name: hostile
seeds: [0]
data:
  kind: npz
  path: d.npz
  teacher_size: 24
  student_size: 16
  split: {val: 0.2, test: 0.2, seed: 1}
teacher:
  arch: resnet-mini
  params: {widths: [4, 8], blocks: [1, 1]}
  train: {epochs: EPOCHS, batch_size: 16, augment: none}
students:
  - name: s
    arch: mlp
    params: {hidden: 8, pool: 4}
    loss: [{ce: 0.5}, {kd: {weight: 0.5, tau: 2}}]
    train: {epochs: 2, batch_size: 16, augment: none}
export:
  hls: {enabled: false}
  rtl: {enabled: false}
profile: {targets: [cpu-torch], batch_sizes: [1], runs: 10, warmup: 1}
"""


def _npz(path: Path, n: int = 240, *, y=None, size: int = 24) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    if y is None:
        y = (x[:, 6:18, 6:18].mean((1, 2)) > x.mean((1, 2))).astype(int)
    np.savez(path, x=x, y=y)
    return path


def _recipe(d: Path, text: str = RECIPE, epochs: int = 2, name: str = "r.yaml") -> Path:
    if not (d / "d.npz").exists():
        _npz(d / "d.npz")
    p = d / name
    p.write_text(text.replace("EPOCHS", str(epochs)))
    return p


def cli(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """`edgekd ARGS` in a process of its own; fails the test on any traceback."""
    p = subprocess.run([sys.executable, "-m", "edgekd", *args], capture_output=True, text=True, timeout=timeout,
                       **kw)
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    return p


def cli_error(*args: str, needles: tuple[str, ...] = (), code: int = 2, process: bool = False) -> str:
    """Run the CLI (in this process unless ``process``) and expect one clear error: no traceback, exit ``code``."""
    if process:
        p = cli(*args)
        rc, err = p.returncode, p.stderr
    else:
        import contextlib
        import io

        from edgekd.cli import main

        buf, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(out):
            try:
                rc = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                rc = exc.code
        err = buf.getvalue()
        assert "Traceback" not in err + out.getvalue(), err
    assert rc == code, (rc, err)
    for n in needles:
        assert n in err, (n, err)
    return err


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgekd", "run", *args, "--no-progress", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, timeout: float = 300, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        assert proc is None or proc.poll() is None, proc.stderr.read() if proc else ""
        time.sleep(0.05)


def _accuracies(run: Path) -> dict:
    rep = json.loads((run / "report.json").read_text())
    return {(m["name"], m["seed"]): m["test_acc"] for m in rep["models"]}


@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> tuple[Path, Path]:
    """One finished run of the small recipe: (recipe, run directory)."""
    d = tmp_path_factory.mktemp("done")
    r = _recipe(d)
    out = d / "run"
    p = cli("run", str(r), "--out", str(out), "--no-progress", "--threads", "1")
    assert p.returncode == 0, p.stderr
    return r, out


# ---- the run directory --------------------------------------------------------------------
def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    r = _recipe(tmp_path)
    thesis = tmp_path / "my_thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    err = cli_error("run", str(r), "--out", str(thesis), "--overwrite", needles=("not an edgekd run", "chapter1.tex"))
    assert (thesis / "chapter1.tex").read_text() == "years of work" and "--out" in err
    cli_error("run", str(r), "--out", str(thesis), "--resume", needles=("not an edgekd run",))
    assert sorted(p.name for p in thesis.iterdir()) == ["chapter1.tex"]


def test_out_naming_a_file_is_refused(tmp_path):
    r = _recipe(tmp_path)
    f = tmp_path / "afile"
    f.write_text("x")
    cli_error("run", str(r), "--out", str(f), needles=("names a file",))
    assert f.read_text() == "x"


def test_second_process_on_a_live_run_is_refused(tmp_path):
    """Two real processes: --resume and --overwrite on a live run are refused, naming its PID."""
    r = _recipe(tmp_path, epochs=5000)  # runs until killed
    out = tmp_path / "live"
    first = start(str(r), "--out", str(out))
    try:
        _wait_for(lambda: (out / "checkpoints" / "teacher-seed0.pt").is_file(), proc=first)
        for flag in ("--resume", "--overwrite"):
            assert first.poll() is None
            err = cli_error("run", str(r), "--out", str(out), flag, "--no-progress", process=True,
                            needles=("in use by another edgekd process", f"PID {first.pid}"))
            assert "wait for it" in err
        assert first.poll() is None and (out / "checkpoints").is_dir()
    finally:
        first.kill()
        first.wait()
    # the kernel freed the lock with the killed process: the run resumes (2 epochs are enough now)
    r.write_text(r.read_text().replace("epochs: 5000", "epochs: 2"))
    cli_error("run", str(r), "--out", str(out), "--resume", needles=("different recipe", "teacher.train.epochs"))


def test_sigterm_stops_cleanly_and_resume_completes(tmp_path):
    r = _recipe(tmp_path, epochs=8)
    out = tmp_path / "t"
    p = start(str(r), "--out", str(out))
    _wait_for(lambda: (out / "checkpoints" / "teacher-seed0.pt").is_file(), proc=p)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 143
    err = p.stderr.read()
    assert "terminated" in err and "--resume" in err and "Traceback" not in err
    p = cli("run", str(r), "--out", str(out), "--resume", "--no-progress", "--threads", "1")
    assert p.returncode == 0, p.stderr


def test_resume_sweeps_what_an_interrupted_export_left(done_run, tmp_path):
    """A killed hls4ml export leaves `.<model>-hls-w16.tmp/`; a killed replace leaves `.<x>.old/`."""
    import shutil

    r, done = done_run
    out = tmp_path / "copy"
    shutil.copytree(done, out)
    art = out / "artifacts" / "s"
    (art / ".s-hls-w16.tmp" / "firmware").mkdir(parents=True)
    (art / ".s-hls-w16.tmp" / "firmware" / "x.h").write_text("half")
    onnx_dir = art / "s-hls"  # a finished project folder, moved aside by a replace_dir killed between its renames
    onnx_dir.mkdir()
    (onnx_dir / "good.txt").write_text("good")
    onnx_dir.rename(art / f".{onnx_dir.name}.old")
    p = cli("run", str(r), "--out", str(out), "--resume", "--no-progress", "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob(".*.old"))
    assert (onnx_dir / "good.txt").read_text() == "good"
    assert _accuracies(out) == _accuracies(done)


def test_resume_refuses_changed_data_and_unverifiable_runs(done_run, tmp_path):
    import shutil

    r, done = done_run
    out = tmp_path / "copy"
    shutil.copytree(done, out)
    ck = out / "checkpoints" / "teacher-seed0.pt"
    before = ck.read_bytes()
    # same path, other contents
    data = r.parent / "d.npz"
    kept = data.read_bytes()
    try:
        _npz(data, y=np.arange(240) % 2)
        cli_error("run", str(r), "--out", str(out), "--resume", needles=("data changed",))
    finally:
        data.write_bytes(kept)
    assert ck.read_bytes() == before
    # recipe.json missing, empty, binary, a folder: the run cannot be verified
    saved = out / "recipe.json"
    good = saved.read_bytes()
    for damage in ("missing", "empty", "binary", "folder", "truncated"):
        saved.unlink(missing_ok=True)
        if damage == "empty":
            saved.write_bytes(b"")
        elif damage == "binary":
            saved.write_bytes(os.urandom(64))
        elif damage == "folder":
            saved.mkdir()
        elif damage == "truncated":
            saved.write_bytes(good[: len(good) // 2])
        cli_error("run", str(r), "--out", str(out), "--resume", needles=("cannot verify",))
        if saved.is_dir():
            saved.rmdir()
        elif saved.exists():
            saved.unlink()
    saved.write_bytes(good)
    assert ck.read_bytes() == before
    # profile/export changes are allowed on resume (they do not touch trained weights)
    r2 = r.parent / "r2.yaml"
    r2.write_text(r.read_text().replace("runs: 10", "runs: 11"))
    assert cli("run", str(r2), "--out", str(out), "--resume", "--no-progress", "--threads", "1").returncode == 0


def test_corrupt_teacher_cache_is_rebuilt(done_run, tmp_path):
    import shutil

    r, done = done_run
    out = tmp_path / "copy"
    shutil.copytree(done, out)
    caches = list((out / "cache").glob("*.pt"))
    assert caches
    for i, c in enumerate(caches):
        c.write_bytes(b"" if i % 2 == 0 else b"\x80\x04garbage")
    p = cli("run", str(r), "--out", str(out), "--resume", "--no-progress", "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert "rebuilding it from the teacher" in (out / "run.log").read_text()
    assert _accuracies(out) == _accuracies(done)


def test_artifacts_follow_the_umask(done_run):
    _, done = done_run
    mask = os.umask(0)
    os.umask(mask)
    for name in ("report.json", "manifest.json", "checkpoints/teacher-seed0.pt"):
        assert (done / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_tools_log_is_written_as_it_comes(tmp_path):
    from edgekd.pipeline import _ToolsLog

    log = _ToolsLog(tmp_path / "run")
    log.write("before the folder exists\n")
    (tmp_path / "run").mkdir()
    log.write("hls4ml says hi\n")
    assert (tmp_path / "run" / "tools.log").read_text() == "before the folder exists\nhls4ml says hi\n"


# ---- statistics that would mislead ---------------------------------------------------------
def test_misleading_recipes_and_data_are_refused(tmp_path):
    r = _recipe(tmp_path)
    text = r.read_text()
    cases = {
        "seeds": (text.replace("seeds: [0]", "seeds: [0, 0, 1]"), "seeds must be distinct"),
        "quick0": (text + "quick: {teacher_epochs: 0}\n", "quick.teacher_epochs"),
        "quickneg": (text + "quick: {student_epochs: -1}\n", "quick.student_epochs"),
        "nan": (text.replace("tau: 2", "tau: .nan"), "nan is not a valid value"),
        "inf": (text.replace("batch_size: 16, augment", "batch_size: 16, optim: {lr: .inf}, augment", 1), "lr"),
        "tau0": (text.replace("tau: 2", "tau: 0"), "must be > 0"),
        "channels": (text.replace("arch: mlp\n    params: {hidden: 8, pool: 4}",
                                  "arch: cellsort-cnn\n    params: {channels: [-1, 4]}"), "students[0]"),
        "stride0": (text.replace("blocks: [1, 1]}", "blocks: [1, 1], strides: [0, 2]}"), "teacher"),
        "too_small": (text.replace("arch: mlp\n    params: {hidden: 8, pool: 4}",
                                   "arch: cellsort-cnn\n    params: {kernel: 7}"), "too small"),
        "batch": (text.replace("batch_sizes: [1]", "batch_sizes: [65536]").replace("teacher_size: 24",
                                                                                    "teacher_size: 2048"),
                  "for the inputs alone"),
    }
    for key, (body, needle) in cases.items():
        f = tmp_path / f"{key}.yaml"
        f.write_text(body)
        err = cli_error("run", str(f), "--out", str(tmp_path / f"out-{key}"), needles=(needle,))
        assert "learning rate" not in err, key
        assert not (tmp_path / f"out-{key}" / "checkpoints" / "teacher-seed0.pt").exists(), key
    # the same recipes fail `validate`, before any data is read
    cli_error("validate", str(tmp_path / "too_small.yaml"), needles=("too small", "students[0]"))


def test_misleading_data_is_refused(tmp_path):
    r = _recipe(tmp_path)
    for key, y, needle in (("one_class", np.zeros(240, int), "at least two"),
                           ("fraction", np.where(np.arange(240) % 2, 1.0, 0.5), "whole numbers"),
                           ("huge_label", np.r_[np.arange(239) % 2, 10**9], "at most 10,000")):
        _npz(tmp_path / f"{key}.npz", y=y)
        f = tmp_path / f"{key}.yaml"
        f.write_text(r.read_text().replace("d.npz", f"{key}.npz"))
        cli_error("run", str(f), "--out", str(tmp_path / f"out-{key}"), needles=(needle,))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 24, 24), np.uint8), y=np.zeros(0, int))
    f = tmp_path / "empty.yaml"
    f.write_text(r.read_text().replace("d.npz", "empty.npz"))
    cli_error("run", str(f), "--out", str(tmp_path / "out-empty"), needles=("no images",))


def test_fractional_idx_labels_are_refused(tmp_path):
    from edgekd.data.idx import read_lymphomnist, write_idx
    from edgekd.errors import DataError

    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", np.zeros((4, 8, 8), np.uint8))
        # IDX type 0x0D: float32 labels
        body = np.array([0, 1.5, 1, 0], ">f4").tobytes()
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 0x0D, 1]) + (4).to_bytes(4, "big") + body)
    with pytest.raises(DataError, match="whole numbers"):
        read_lymphomnist(tmp_path)


def test_nan_teacher_is_an_error_not_a_score(tmp_path):
    r = _recipe(tmp_path)
    from edgekd.nets import create_net

    t = create_net("resnet-mini", num_classes=2, in_channels=1, input_size=24, params={"widths": [4, 8],
                                                                                       "blocks": [1, 1]})
    sd = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in t.state_dict().items()}
    torch.save({"model": sd, "meta": {"arch": "resnet-mini", "num_classes": 2, "input_size": 24}}, tmp_path / "t.pt")
    f = tmp_path / "nt.yaml"
    f.write_text(r.read_text().replace("  train: {epochs: 2, batch_size: 16, augment: none}\nstudents",
                                       "  checkpoint: t.pt\nstudents", 1))
    cli_error("run", str(f), "--out", str(tmp_path / "o"), needles=("NaN or Inf", "teacher seed 0"))


# ---- memory bombs --------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_in_bounded_memory(tmp_path):
    """1 KB of nested aliases (9**10 values when expanded): refused under a 1 GiB address-space limit."""
    import resource

    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "bomb.yaml").stat().st_size < 2000
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # noqa: E731 - 3.4 GB before
    p = subprocess.run([sys.executable, "-m", "edgekd", "validate", str(tmp_path / "bomb.yaml")], capture_output=True,
                       text=True, timeout=120, preexec_fn=limit)
    assert p.returncode == 2 and "YAML aliases" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_npz_declaring_a_huge_array_is_refused_before_loading(tmp_path):
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (200000, 200000)})
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:
        z.writestr("x.npy", buf.getvalue())
        z.writestr("y.npy", b"")
    r = _recipe(tmp_path)
    cli_error("run", str(r), "--out", str(tmp_path / "o"), needles=("more than half", "(200000, 200000)"))


# ---- edgekd profile ------------------------------------------------------------------------
def _onnx(path: Path, *, dtype=None, shape=(1, 1, 8, 8), inputs=True, external: bool = False) -> Path:
    import onnx
    from onnx import TensorProto, helper

    dtype = dtype or TensorProto.FLOAT
    w = helper.make_tensor("w", TensorProto.FLOAT, [1], np.array([2.0], np.float32).tobytes(), raw=True)
    if inputs:
        x = helper.make_tensor_value_info("x", dtype, list(shape))
        node = helper.make_node("Mul", ["x", "w"], ["y"]) if dtype == TensorProto.FLOAT else \
            helper.make_node("Identity", ["x"], ["y"])
        graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", dtype, list(shape))], [w])
    else:
        graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [w])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if external:
        onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
                        size_threshold=0)
    else:
        onnx.save(m, str(path))
    return path


def test_profile_bad_inputs_give_one_clear_message(tmp_path, done_run):
    from onnx import TensorProto

    (tmp_path / "empty.onnx").write_bytes(b"")
    cli_error("profile", str(tmp_path / "empty.onnx"), needles=("no inputs",))
    (tmp_path / "junk.onnx").write_bytes(os.urandom(256))
    cli_error("profile", str(tmp_path / "junk.onnx"), needles=("cannot read ONNX",))
    cli_error("profile", str(_onnx(tmp_path / "noin.onnx", inputs=False)), needles=("no inputs",))
    cli_error("profile", str(_onnx(tmp_path / "int.onnx", dtype=TensorProto.INT64)), needles=("INT64",))
    cli_error("profile", str(_onnx(tmp_path / "huge.onnx", shape=(1, 1, 200000, 200000))),
              needles=("values per sample",))
    ok = _onnx(tmp_path / "ok.onnx")
    for bad in (["--runs", "0"], ["--runs", "-3"], ["--batch", "0"], ["--threads", "-1"]):
        cli_error("profile", str(ok), *bad, needles=("must be 1 or more",))
    # --json into a folder that does not exist yet: made
    p = cli("profile", str(ok), "--runs", "20", "--batch", "1", "--json", str(tmp_path / "new" / "dir" / "r.json"))
    assert p.returncode == 0 and json.loads((tmp_path / "new" / "dir" / "r.json").read_text())[0]["runs"] == 20
    # external weights are not read to learn the input shape; missing ones are a clear error
    (tmp_path / "ext").mkdir()
    ext = _onnx(tmp_path / "ext" / "m.onnx", external=True)
    (ext.parent / "w.bin").unlink()
    cli_error("profile", str(ext), "--runs", "20", "--batch", "1", needles=("cannot run the model",))
    from edgekd.cli import _onnx_input

    with open(ext.parent / "w.bin", "wb") as fh:
        fh.truncate(8 << 30)  # 8 GB of (sparse) external data: never read to learn the input shape
    assert _onnx_input(ext).shape == (1, 1, 8, 8)
    # a damaged report.json in a run directory
    import shutil

    run = tmp_path / "run"
    shutil.copytree(done_run[1], run)
    (run / "report.json").write_text('{"accuracy": [')
    cli_error("profile", str(run), needles=("report.json is damaged",))


# ---- full and read-only disks (a real tmpfs) -------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def mount(name: str, opts: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip()})")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_full_disk_is_a_clear_error_and_resume_continues(tmp_path, tmpfs):
    import shutil

    r = _recipe(tmp_path)
    disk = tmpfs("small", "size=96k")
    out = disk / "run"
    err = cli_error("run", str(r), "--out", str(out), "--no-progress", needles=("No space left on device",
                                                                                "free disk space"))
    assert "--resume" in err
    # with room again, the same run resumes from what it had
    big = tmp_path / "big"
    shutil.copytree(out, big / "run")
    p = cli("run", str(r), "--out", str(big / "run"), "--resume", "--no-progress", "--threads", "1")
    assert p.returncode == 0, p.stderr


def test_read_only_output_folder_is_a_clear_error(tmp_path, tmpfs):
    r = _recipe(tmp_path)
    ro = tmpfs("ro", "ro,size=64k")
    cli_error("run", str(r), "--out", str(ro / "run"), needles=("Read-only file system",))


def test_sigint_stops_a_run_started_with_sigint_ignored(tmp_path):
    """A background job of a non-interactive shell inherits SIGINT ignored; `kill -INT` must still stop it."""
    r = _recipe(tmp_path, epochs=5000)
    out = tmp_path / "bg"
    p = subprocess.Popen([sys.executable, "-m", "edgekd", "run", str(r), "--out", str(out), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    _wait_for(lambda: (out / "checkpoints" / "teacher-seed0.pt").is_file(), proc=p)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 130
    err = p.stderr.read()
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
