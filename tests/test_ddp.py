"""Two processes with gloo on CPU take the same steps as one process with the same global batch."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from edgekd.config.schema import NormalizeConfig, TrainConfig
from edgekd.data import PairedViews, synthetic
from edgekd.data.dataset import ImageSet
from edgekd.distill import CompositeLoss, TeacherSignal, build_teacher_cache, train
from edgekd.distill.trainer import seed_everything
from edgekd.nets import create_net

LOSS = [("ce", 0.5, {}), ("kd", 0.5, {"tau": 2.0}), ("taid", 0.3, {})]
CFG = TrainConfig(epochs=2, batch_size=32, augment="dihedral")


def _setup():
    x, y = synthetic.generate(192 + 64, seed=3, classes=(0, 1))
    norm = NormalizeConfig()
    tr = PairedViews.from_images(ImageSet(x[:192], y[:192]), 32, 24, norm)
    va = PairedViews.from_images(ImageSet(x[192:], y[192:]), 32, 24, norm)
    seed_everything(7)
    teacher = create_net("resnet-mini", num_classes=2, in_channels=1, input_size=32,
                         params={"widths": [8, 16], "blocks": [1, 1]}).eval()
    cache = build_teacher_cache(teacher, tr, CFG.augment)
    seed_everything(0)
    student = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=24, params={"channels": 4})
    return tr, va, cache, student


def _worker(rank, world, init, out, ckpt):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        tr, va, cache, student = _setup()
        res = train(student, tr, va, CFG, CompositeLoss(LOSS), seed=0, teacher=TeacherSignal(cache=cache),
                    checkpoint=ckpt, progress=False)
        if rank == 0:
            torch.save({"state": student.state_dict(), "history": res.history}, out)
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_equals_single_process(tmp_path):
    torch.set_num_threads(1)
    tr, va, cache, ref = _setup()
    ref_res = train(ref, tr, va, CFG, CompositeLoss(LOSS), seed=0, teacher=TeacherSignal(cache=cache),
                    progress=False)
    out, ckpt = tmp_path / "ddp.pt", tmp_path / "ckpt.pt"
    mp.start_processes(_worker, args=(2, f"file://{tmp_path / 'pg'}", str(out), ckpt), nprocs=2,
                       start_method="spawn", join=True)
    got = torch.load(out, weights_only=True)
    for k, v in ref.state_dict().items():
        assert torch.allclose(got["state"][k], v, atol=1e-5, rtol=1e-4), k  # float sums in another order
    # metrics were all-reduced: the whole training split's loss and accuracy, not one rank's half
    for a, b in zip(got["history"], ref_res.history):
        assert abs(a["loss"] - b["loss"]) < 1e-4 and abs(a["train_acc"] - b["train_acc"]) < 1e-9
        assert a["samples"] == b["samples"] == 192  # each rank saw its half: together, the split once
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2  # rank 0 wrote the checkpoint


def test_torchrun_two_processes_runs_a_recipe(tmp_path):
    """The CLI under torchrun (2 × gloo): rank 0 alone writes the run; the result equals one process."""
    import json
    import subprocess
    import sys

    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (240, 24, 24), dtype=np.uint8)
    y = (x[:, 6:18, 6:18].mean((1, 2)) > x.mean((1, 2))).astype(int)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    (tmp_path / "r.yaml").write_text("""
name: ddp
seeds: [0]
data: {kind: npz, path: d.npz, teacher_size: 24, student_size: 24, split: {val: 0.2, test: 0.2}}
teacher: {arch: mlp, params: {hidden: 8, pool: 2}, train: {epochs: 2, batch_size: 16, augment: none}}
students:
  - {name: s, arch: mlp, params: {hidden: 4, pool: 4}, loss: [{ce: 0.5}, {kd: 0.5}],
     train: {epochs: 2, batch_size: 16, augment: none}}
export: {hls: {enabled: false}, rtl: {enabled: false}}
profile: {targets: [cpu-torch], batch_sizes: [1], runs: 20, warmup: 2}
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "edgekd", "run", str(tmp_path / "r.yaml"), "--out",
                          str(tmp_path / "one"), "--no-progress", "--threads", "1"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    import socket

    with socket.socket() as sock:  # a free loopback port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_addr=127.0.0.1", f"--master_port={port}",
                          "-m", "edgekd", "run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "two"),
                          "--no-progress", "--threads", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("status: ok") == 1  # one summary: rank 0's
    a = torch.load(tmp_path / "one" / "checkpoints" / "s-seed0.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoints" / "s-seed0.pt", weights_only=True)
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5), k
    assert json.loads((tmp_path / "two" / "report.json").read_text())["status"] == "ok"
