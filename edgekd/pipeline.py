"""The whole pipeline, stage by stage: data → teacher → cache → students → export →
fidelity → profile → report. Each stage consumes the typed results of the previous ones.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from edgekd.config.schema import Recipe, StudentConfig, TrainConfig
from edgekd.data import PairedViews, build_splits
from edgekd.data.augment import augment_key
from edgekd.distill import CompositeLoss, TeacherSignal, accuracy, build_teacher_cache, predict_logits, train
from edgekd.distill.metrics import classification_metrics
from edgekd.distill.trainer import load_checkpoint, seed_everything
from edgekd.errors import ConfigError, EdgekdError, FidelityError
from edgekd.export.artifact import Artifact
from edgekd.nets import count_parameters, create_net
from edgekd.nets.model_files import is_edgekd_checkpoint, load_model_file
from edgekd.profile import LatencyResult, capture_environment, profile_ort, profile_torch
from edgekd.report import ModelResult, RunResults, write_report
from edgekd.runs import RunDir, write_json, write_manifest


def apply_quick(recipe: Recipe) -> Recipe:
    """A copy of ``recipe`` with the ``quick`` overrides: small data, few epochs."""
    q = recipe.quick
    r = recipe.model_copy(deep=True)
    r.seeds = list(q.seeds)
    syn = r.data.synthetic
    syn.n_train, syn.n_val, syn.n_test = q.n_train, q.n_val, q.n_test
    if r.data.kind != "synthetic":
        r.data.max_train = min(r.data.max_train or q.n_train, q.n_train)
    r.teacher.train.epochs = min(r.teacher.train.epochs, q.teacher_epochs)
    for s in r.students:
        s.train.epochs = min(s.train.epochs, q.student_epochs)
    r.profile.runs = q.profile_runs
    r.profile.large_batch_runs = min(r.profile.large_batch_runs, q.large_batch_runs)
    r.export.hls.n_check = min(r.export.hls.n_check, q.hls_n_check)
    return r


@dataclass
class Logger:
    path: Path | None = None
    echo: bool = True

    def __call__(self, msg: str) -> None:
        if self.echo:
            print(msg, file=sys.stderr, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(msg + "\n")


def _meta(role: str, arch: str, params: dict, n_classes: int, size: int, seed: int, train: TrainConfig,
          loss: list | None = None) -> dict[str, Any]:
    return {"role": role, "arch": arch, "params": json.dumps(params, sort_keys=True), "num_classes": n_classes,
            "input_size": size, "seed": seed, "epochs": train.epochs, "batch_size": train.batch_size,
            "loss": json.dumps(loss or [], sort_keys=True)}


def prepare_run_dir(out: Path, recipe_dump: dict[str, Any], *, resume: bool, overwrite: bool) -> RunDir:
    """Create the run directory; refuse to touch an existing run unless asked to."""
    run = RunDir(out)
    saved = out / "recipe.json"
    if out.exists() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif not resume:
            raise EdgekdError("run directory already exists", where=str(out),
                              fix="pass --resume to continue it, --out DIR for a new run, or --overwrite to replace it")
        elif saved.is_file():
            old = json.loads(saved.read_text())
            if old != json.loads(json.dumps(recipe_dump, default=str)):
                raise EdgekdError("run directory was made by a different recipe; refusing to mix results",
                                  where=str(out), fix="use --out DIR for a new run, or --overwrite to replace it")
    run.create()
    for stale in run.root.rglob(".*.tmp"):  # left by a process killed mid-write (atomic writes never expose them)
        stale.unlink(missing_ok=True)
    write_json(saved, recipe_dump)
    return run


def run_pipeline(recipe: Recipe, out: Path, *, quick: bool = False, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, threads: int | None = None,
                 log: Callable[[str], None] | None = None) -> RunResults:
    """Run every stage of ``recipe`` into the run directory ``out``; returns the results.

    Raises :class:`FidelityError` (after writing the report) when an artifact fails its check.
    hls4ml, qonnx and da4ml print their own progress on stdout: it goes to ``tools.log`` in
    the run directory, not to the console (edgekd's own log goes to stderr and ``run.log``).
    """
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            return _run_stages(recipe, out, quick=quick, resume=resume, overwrite=overwrite, progress=progress,
                               threads=threads, log=log)
    finally:
        if buf.getvalue() and Path(out).is_dir():
            with open(Path(out) / "tools.log", "a", encoding="utf-8") as fh:
                fh.write(buf.getvalue())


def _run_stages(recipe: Recipe, out: Path, *, quick: bool, resume: bool, overwrite: bool, progress: bool,
                threads: int | None, log: Callable[[str], None] | None) -> RunResults:
    from edgekd.distill import distributed as D

    if quick:
        recipe = apply_quick(recipe)
    dump = recipe.model_dump(mode="json")
    ddp = D.current()
    if ddp.is_main:  # under torchrun, rank 0 alone creates, logs and writes
        run = prepare_run_dir(Path(out), {"quick": quick, **dump}, resume=resume, overwrite=overwrite)
    D.barrier()
    if not ddp.is_main:
        run = RunDir(Path(out))
        progress = False
    log = log or Logger(run.root / "run.log" if ddp.is_main else None, echo=ddp.is_main)
    if ddp.enabled:
        log(f"[dist] {ddp.world_size} processes; global batch = each recipe batch_size, split across ranks")
    if threads:
        torch.set_num_threads(threads)
    stage_s: dict[str, float] = {}
    t = time.perf_counter()

    # -- data ---------------------------------------------------------------------------
    log(f"[data] {recipe.data.kind} dataset, classes {recipe.data.classes or 'all'}")
    splits = build_splits(recipe.data)
    d = recipe.data
    views = {k: PairedViews.from_images(getattr(splits, k), d.teacher_size, d.student_size, d.normalize,
                                        channels=d.channels, teacher_channels=d.teacher_channels)
             for k in ("train", "val", "test")}
    in_ch = int(views["train"].student.shape[1])
    t_ch = int(views["train"].teacher.shape[1])  # differs when data.teacher_channels converts gray↔RGB
    n_cls = splits.num_classes
    log(f"[data] {splits.sizes()} classes={splits.class_names} channels={in_ch}")
    data_info = {"source": splits.source, "classes": splits.class_names, "sizes": splits.sizes(),
                 "teacher_size": d.teacher_size, "student_size": d.student_size, **splits.info}
    stage_s["data"] = time.perf_counter() - t

    models: list[ModelResult] = []
    trained: dict[tuple[str, int], nn.Module] = {}
    needs_teacher = recipe.needs_teacher

    for seed in recipe.seeds:
        # -- teacher ------------------------------------------------------------------------
        t = time.perf_counter()
        tc = recipe.teacher
        seed_everything(seed)
        meta = _meta("teacher", tc.arch, tc.params, n_cls, d.teacher_size, seed, tc.train)
        if tc.checkpoint is not None and not is_edgekd_checkpoint(tc.checkpoint):
            # a teacher trained elsewhere: state dict, TorchScript, .pt2 or ONNX (checked against the data)
            teacher = load_model_file(tc.checkpoint, arch=tc.arch, params=tc.params, num_classes=n_cls,
                                      in_channels=t_ch, input_size=d.teacher_size)
            res_hist, res_s, resumed = [], 0.0, None
        else:
            teacher = create_net(tc.arch, num_classes=n_cls, in_channels=t_ch, input_size=d.teacher_size,
                                 params=tc.params, where="teacher")
        if tc.checkpoint is not None and is_edgekd_checkpoint(tc.checkpoint):
            blob = load_checkpoint(tc.checkpoint, {k: meta[k] for k in ("arch", "num_classes", "input_size")})
            try:
                teacher.load_state_dict(blob["model"])
            except RuntimeError as exc:
                raise EdgekdError(f"checkpoint does not fit teacher '{tc.arch}': {str(exc).splitlines()[0]}",
                                  where=str(tc.checkpoint), fix="train a teacher with this recipe first") from None
            res_hist, res_s, resumed = blob.get("history", []), 0.0, None
        elif tc.checkpoint is None:
            res = train(teacher, views["train"], views["val"], tc.train, CompositeLoss([("ce", 1.0, {})]),
                        seed=seed, view="teacher", checkpoint=run.checkpoint("teacher", seed), meta=meta,
                        desc=f"teacher seed {seed}", progress=progress)
            res_hist, res_s, resumed = res.history, res.seconds, res.resumed_from_epoch
        teacher.eval()
        test_logits = predict_logits(teacher, views["test"].teacher)
        acc = accuracy(test_logits, views["test"].labels)
        val = accuracy(predict_logits(teacher, views["val"].teacher), views["val"].labels)
        models.append(ModelResult("teacher", "teacher", tc.arch, count_parameters(teacher), seed, acc, val, res_s,
                                  history=res_hist, resumed_from_epoch=resumed,
                                  metrics=classification_metrics(test_logits, views["test"].labels,
                                                                 splits.class_names).to_dict()))
        trained[("teacher", seed)] = teacher
        log(f"[teacher] seed {seed}: test acc {100 * acc:.2f} % ({count_parameters(teacher):,} params)")
        stage_s["teacher"] = stage_s.get("teacher", 0.0) + time.perf_counter() - t

        # -- teacher cache -------------------------------------------------------------------
        signals: dict[str, TeacherSignal] = {}
        if needs_teacher:
            t = time.perf_counter()
            augs = {augment_key(s.train.augment): s.train.augment for s in recipe.students if s.uses_teacher}
            for key, aug in sorted(augs.items()):  # one cache per augmentation (its key names the file)
                from edgekd.distill.losses import teacher_taps_for

                terms = [t for s in recipe.students if s.uses_teacher and augment_key(s.train.augment) == key
                         for t in s.loss]
                if not ddp.is_main:
                    D.barrier()  # rank 0 computes the cache once; the others load its file
                cache = build_teacher_cache(teacher, views["train"], aug,
                                            path=run.cache / f"teacher-seed{seed}-{key}.pt", progress=progress,
                                            taps=teacher_taps_for(terms), feature_dtype=torch.float16)
                if ddp.is_main:
                    D.barrier()
                signals[key] = TeacherSignal(cache=cache)
                log(f"[cache] teacher logits for {len(views['train'])} samples × {cache.transforms} views")
            stage_s["teacher_cache"] = stage_s.get("teacher_cache", 0.0) + time.perf_counter() - t

        # -- students ------------------------------------------------------------------------
        t = time.perf_counter()
        for s in recipe.students:
            student, res = _train_student(s, seed, views, n_cls, in_ch, d.student_size,
                                          signals.get(augment_key(s.train.augment)), run, progress)
            test_logits = predict_logits(student, views["test"].student)
            acc = accuracy(test_logits, views["test"].labels)
            val = accuracy(predict_logits(student, views["val"].student), views["val"].labels)
            models.append(ModelResult(s.name, "student", s.arch, count_parameters(student), seed, acc, val,
                                      res.seconds, loss=[t_.model_dump() for t_ in s.loss], history=res.history,
                                      resumed_from_epoch=res.resumed_from_epoch,
                                      metrics=classification_metrics(test_logits, views["test"].labels,
                                                                     splits.class_names).to_dict()))
            trained[(s.name, seed)] = student
            log(f"[student] {s.name} seed {seed}: test acc {100 * acc:.2f} % ({count_parameters(student):,} params)")
        stage_s["students"] = stage_s.get("students", 0.0) + time.perf_counter() - t

    D.barrier()
    if not ddp.is_main:  # workers are done once training is
        return RunResults(recipe.name, "worker", quick, list(recipe.seeds), data_info, models, [], [], {}, stage_s)

    # -- export + fidelity (first seed) ----------------------------------------------------
    t = time.perf_counter()
    seed0 = recipe.seeds[0]
    artifacts: list[Artifact] = []
    fpga: list = []
    fpga_latencies: list[LatencyResult] = []
    exported = ["teacher"] + [s.name for s in recipe.students if s.export]
    n_check = recipe.export.hls.n_check
    desc = f"test split, first {{n}} images (seed {seed0} models)"
    if recipe.export.onnx.enabled:
        for name in exported:
            model = trained[(name, seed0)]
            if getattr(model, "edgekd_file_format", None) == "onnx":  # already ONNX: nothing to export or check
                log(f"[export] {name}: loaded from an ONNX file, not re-exported")
                continue
            x = views["test"].teacher if name == "teacher" else views["test"].student
            x = x[: max(n_check, 1000)]
            art = _onnx_export(model, name, x, run, recipe, desc.format(n=len(x)))
            artifacts.append(art)
            log(f"[export] {name} → ONNX: {art.fidelity.summary() if art.fidelity else art.error}")
    # the Verilator builds of fpga-rtl run in the background while hls4ml compiles its C simulations
    rtl_jobs: list[_RtlJob] = []
    try:
        if recipe.export.rtl.enabled:
            for name in exported[1:]:
                model = trained[(name, seed0)]
                if _is_quantized(model):
                    rtl_jobs.append(_start_rtl(model, name, views["test"].student[: recipe.export.rtl.n_check],
                                               run.artifact_dir(name) / "rtl", recipe, desc, log))
        if recipe.export.hls.enabled:
            from edgekd.export import hls

            for name in exported[1:]:
                model = trained[(name, seed0)]
                x_check = views["test"].student[:n_check]
                quantized = _is_quantized(model)
                if quantized:
                    from edgekd.export import qonnx_hls

                    art = qonnx_hls.export_qat_and_check(model, name, x_check, run.artifact_dir(name),
                                                         recipe.export.hls, mean=d.normalize.mean,
                                                         std=d.normalize.std,
                                                         inputs_desc=desc.format(n=len(x_check)), log=log)
                else:
                    art = hls.export_and_check(model, name, views["val"].student[:1000], x_check,
                                               run.artifact_dir(name), recipe.export.hls,
                                               inputs_desc=desc.format(n=len(x_check)), log=log)
                artifacts.append(art)
                log(f"[export] {name} → hls4ml: {art.fidelity.summary() if art.fidelity else art.error}")
                if art.fidelity is not None:
                    from edgekd.profile.fpga import hls_figures

                    bits = (_max_bits(model) if quantized
                            else int(art.metadata.get("total_width", recipe.export.hls.width)))
                    fig, lat = hls_figures(_float_twin(model, recipe, name, n_cls, in_ch, d.student_size), name,
                                           tuple(x_check.shape[1:]), recipe.export.hls, bits, art.path,
                                           layer_reuse=art.metadata.get("layer_reuse"))
                    fpga.append(fig)
                    fpga_latencies.append(lat)
                    fp = (f", first pixel → decision {fig.first_pixel_to_decision_us:.2f} µs"
                          if fig.first_pixel_to_decision_us is not None else "")
                    log(f"[fpga] {name}: {fig.method} {fig.latency_cycles} cycles = {fig.latency_us:.2f} µs, "
                        f"II {fig.ii_cycles}, DSP {fig.resources['dsp']} ({fig.percent.get('dsp', 0):.0f} %){fp}")
                    if not fig.details["fits_part"]:
                        log(f"[fpga] {name}: WARNING the design exceeds {fig.part} "
                            f"({', '.join(f'{k} {v:.0f} %' for k, v in fig.percent.items() if v > 100)}); "
                            f"reuse factors that fit: {fig.details.get('fitting_reuse_factors')}")
        for job in rtl_jobs:
            art, lat, fig = _finish_rtl(job, recipe, log)
            if art is not None:
                artifacts.append(art)
            if lat is not None:
                fpga_latencies.append(lat)
            if fig is not None:
                fpga.append(fig)
    finally:
        for job in rtl_jobs:
            job.cancel()
    trt_latencies: list[LatencyResult] = []
    if recipe.export.tensorrt.enabled:
        from edgekd.export import tensorrt

        tcfg = recipe.export.tensorrt
        bcfg = tensorrt.BundleConfig(precisions=tuple(tcfg.precisions), default_precision=tcfg.default_precision,
                                     opt_batch=tcfg.opt_batch, max_batch=tcfg.max_batch,
                                     workspace_mib=tcfg.workspace_mib, targets=tuple(tcfg.targets),
                                     n_golden=tcfg.n_golden)
        for name in exported[1:]:
            if _is_quantized(trained[(name, seed0)]):
                # power-of-two UINT8 QAT activations are not TensorRT's signed INT8 Q/DQ pattern
                log(f"[export] {name} → TensorRT bundle skipped: QAT students use power-of-two unsigned "
                    "activations; bundles are built from float students (their INT8 twin is calibrated)")
                continue
            bundle = tensorrt.export_bundle(
                trained[(name, seed0)], name, x_calib=views["train"].student[:512],
                x_check=views["test"].student[:n_check], out_dir=run.artifact_dir(name) / "tensorrt",
                preprocessing=tensorrt.preprocessing_contract(size=d.student_size, channels=in_ch,
                                                              mean=d.normalize.mean, std=d.normalize.std),
                class_names=splits.class_names, config=bcfg,
                build={"auto": None, "never": False, "always": True}[tcfg.build],
                inputs_desc=desc.format(n=min(n_check, len(views["test"]))), log=log)
            artifacts += bundle.artifacts
            trt_latencies += bundle.latencies
            log(f"[export] {name} → TensorRT bundle: {bundle.message}")
    stage_s["export"] = time.perf_counter() - t

    # -- profile ----------------------------------------------------------------------------
    t = time.perf_counter()
    p = recipe.profile
    latencies: list[LatencyResult] = list(trt_latencies) + fpga_latencies
    onnx_paths = {a.model: a.path for a in artifacts if a.target == "onnxruntime" and a.deployable}
    for name in exported:
        model = trained[(name, seed0)]
        if getattr(model, "edgekd_file_format", None) == "onnx":  # ONNX Runtime inside: not a cpu-torch figure
            continue
        x = (views["test"].teacher if name == "teacher" else views["test"].student)[:1]
        for bs in p.batch_sizes:
            runs = p.runs if bs == 1 else p.large_batch_runs
            warm = p.warmup if bs == 1 else max(3, p.warmup // 10)
            if "cpu-torch" in p.targets:
                latencies.append(profile_torch(model, name, x, batch_size=bs, runs=runs, warmup=warm,
                                               threads=p.threads))
            if "onnxruntime" in p.targets and name in onnx_paths:
                latencies.append(profile_ort(onnx_paths[name], name, x.numpy(), batch_size=bs, runs=runs,
                                             warmup=warm, threads=p.threads))
        if "cuda" in p.targets:
            latencies += _profile_cuda(model, name, x, p, onnx_paths.get(name), log)
        best = [r for r in latencies if r.model == name and r.batch_size == 1 and r.method == "measured"]
        log(f"[profile] {name}: " + ", ".join(f"{r.target} p50 {r.p50_us:,.1f} µs / p99 {r.p99_us:,.1f} µs"
                                               for r in best))
    stage_s["profile"] = time.perf_counter() - t

    # -- report -------------------------------------------------------------------------------
    failed = [a for a in artifacts if not a.deployable]
    problems = [f"{a.model} {a.target} artifact failed its fidelity check: "
                f"{a.fidelity.summary() if a.fidelity else a.error}" for a in failed]
    status = "failed" if failed else "ok"
    results = RunResults(recipe.name, status, quick, list(recipe.seeds), data_info, models, artifacts, latencies,
                         capture_environment(), stage_s, problems, fpga=[f.to_dict() for f in fpga])
    paths = write_report(results, run.root)
    write_manifest(run, recipe=dump, seeds=list(recipe.seeds), quick=quick, status=status,
                   extra={"artifacts": {f"{a.model}:{a.target}": a.status for a in artifacts}})
    log(f"[report] {paths['md']}")
    if failed:
        raise FidelityError("; ".join(problems), where=str(run.root),
                            fix="see report.md; failed artifacts are marked and must not be deployed")
    return results


def _train_student(s: StudentConfig, seed: int, views, n_cls: int, in_ch: int, size: int,
                   signal: TeacherSignal | None, run: RunDir, progress: bool):
    seed_everything(seed)
    student = create_net(s.arch, num_classes=n_cls, in_channels=in_ch, input_size=size, params=s.params,
                         where=f"students.{s.name}")
    loss = CompositeLoss.from_config(s.loss)
    meta = _meta("student", s.arch, s.params, n_cls, size, seed, s.train, [t.model_dump() for t in s.loss])
    res = train(student, views["train"], views["val"], s.train, loss, seed=seed, teacher=signal,
                checkpoint=run.checkpoint(s.name, seed), meta=meta, desc=f"{s.name} seed {seed}",
                progress=progress)
    return student, res


def _is_quantized(model: nn.Module) -> bool:
    return type(model).__name__ == "QuantStudent"


def _max_bits(model: nn.Module) -> int:
    bits = getattr(model, "bits", {}) or {}
    vals = [max(getattr(b, "weight", 0) or 0, getattr(b, "act", 0) or 0) for b in bits.values()]
    return int(max(vals)) if vals else 8


def _float_twin(model: nn.Module, recipe: Recipe, name: str, n_cls: int, in_ch: int, size: int) -> nn.Module:
    """The float architecture with the same layer shapes (the estimator needs shapes only)."""
    if not _is_quantized(model):
        return model
    s = next(s for s in recipe.students if s.name == name)
    base = s.arch.removesuffix("-q")
    keep = {k: v for k, v in s.params.items() if k in ("channels", "kernel", "hidden", "pool")}
    return create_net(base, num_classes=n_cls, in_channels=in_ch, input_size=size, params=keep)


@dataclass
class _RtlJob:
    """One quantized student's ``fpga-rtl`` export: refused up front, or building in the background."""

    name: str
    n_pixels: int
    target: Any
    pending: Any = None  # edgekd.export.rtl.PendingRtl
    refused: Any = None  # FpgaFigures of a design too large to build

    def cancel(self) -> None:
        if self.pending is not None:
            self.pending.cancel()


def _start_rtl(model: nn.Module, name: str, x: torch.Tensor, out_dir: Path, recipe: Recipe, desc: str,
               log) -> _RtlJob:
    """Write the student's Verilog and start its emulator build, so hls4ml exports run meanwhile."""
    from edgekd.export import intref
    from edgekd.export.rtl import DesignTooLarge, start_rtl_export
    from edgekd.export.rtl_intnet import from_intref
    from edgekd.hwtargets import load_fpga
    from edgekd.nets.quant import firmware_part, float_preprocess
    from edgekd.profile.fpga import FpgaFigures

    cfg = recipe.export.rtl
    target = load_fpga(cfg.target)
    pre = float_preprocess(model)
    with torch.no_grad():
        x_fw = pre(x) if pre is not None else x
    im = intref.extract(firmware_part(model).eval())
    net = from_intref(im, tuple(x_fw.shape[1:]), name)
    codes = im.quantize_input(x_fw)
    job = _RtlJob(name, int(np.prod(x.shape[1:])), target)
    try:
        job.pending = start_rtl_export(net, codes, out_dir, target, model_name=name,
                                       inputs_desc=desc.format(n=len(x)), latency_cutoff=cfg.latency_cutoff)
    except DesignTooLarge as exc:
        log(f"[fpga-rtl] {name}: refused: {exc.what}")
        est = exc.estimate
        job.refused = FpgaFigures(model=name, target="fpga-rtl", part=target.part, method="estimated",
                                  design="da4ml RTL (fully parallel) — refused, does not fit", latency_cycles=0,
                                  latency_us=0.0, ii_cycles=0, clock_mhz=target.clock_mhz,
                                  resources={"lut": int(est.lut), "ff": 0, "dsp": 0, "bram_36k": 0},
                                  percent={"lut": 100.0 * est.lut / est.part_lut}, first_pixel_to_decision_us=None,
                                  source=f"da4ml size estimate: {est.summary()}",
                                  details={"fits_part": False, "refused": True})
    return job


def _finish_rtl(job: _RtlJob, recipe: Recipe, log):
    """The ``fpga-rtl`` target for one quantized student: (artifact, latency, figures) or a refusal."""
    from edgekd.profile.fpga import FpgaFigures

    if job.refused is not None:
        return None, None, job.refused
    cfg, target, name = recipe.export.rtl, job.target, job.name
    art, lat = job.pending.finish()
    log(f"[fpga-rtl] {name}: {art.fidelity.summary()}; {lat.details.get('latency_cycles')} cycles = "
        f"{lat.p50_us * 1000:.0f} ns (simulated)")
    resources = {"lut": int(lat.details.get("lut_estimate_da4ml") or 0),
                 "ff": int(lat.details.get("ff_estimate_da4ml") or 0), "dsp": 0, "bram_36k": 0}
    source = "simulated: Verilator emulation of da4ml Verilog; resources: da4ml estimate"
    if cfg.yosys:
        from edgekd.profile.yosys import synth_rtl_design

        ys = synth_rtl_design(art.path, target)
        resources = {"lut": ys.lut, "ff": ys.ff, "dsp": ys.dsp, "bram_36k": int(round(ys.bram_36k))}
        source = "simulated: Verilator emulation of da4ml Verilog; resources: Yosys synth"
    budget = target.resources
    percent = {"lut": 100.0 * resources["lut"] / budget.lut, "ff": 100.0 * resources["ff"] / budget.ff,
               "dsp": 100.0 * resources["dsp"] / budget.dsp if budget.dsp else 0.0}
    fp = None
    if target.pixel_bus is not None:
        from edgekd.profile.first_pixel import parallel_first_pixel

        fp = parallel_first_pixel(job.n_pixels, int(lat.details.get("latency_cycles", 0)), target,
                                  model=name).first_pixel_to_decision_us
    fig = FpgaFigures(model=name, target="fpga-rtl", part=target.part, method="simulated",
                      design=f"da4ml RTL (fully parallel, {cfg.latency_cutoff:g} ns/stage)",
                      latency_cycles=int(lat.details.get("latency_cycles", 0)), latency_us=lat.p50_us,
                      ii_cycles=int(lat.details.get("ii_cycles", 1)), clock_mhz=target.clock_mhz,
                      resources=resources, percent=percent, first_pixel_to_decision_us=fp, source=source,
                      details={"fits_part": all(v <= 100 for v in percent.values()),
                               "exact_match_rate": art.fidelity.exact_match_rate if art.fidelity else None})
    return art, lat, fig


def _profile_cuda(model: nn.Module, name: str, x: torch.Tensor, p, onnx_path, log) -> list[LatencyResult]:
    """The ``cuda`` target; on a machine without a GPU it is skipped with one line."""
    from edgekd.errors import ToolMissingError
    from edgekd.profile.cuda import CudaProfileConfig, profile_cuda

    try:
        prof = profile_cuda(model, name, x, CudaProfileConfig(), onnx_path=onnx_path, log=log)
    except ToolMissingError as exc:
        log(f"[profile] {name}: cuda target skipped: {exc.what}")
        return []
    return list(prof.results)


def _onnx_export(model: nn.Module, name: str, x: torch.Tensor, run: RunDir, recipe: Recipe, desc: str) -> Artifact:
    from edgekd.export import onnx as onnx_export

    return onnx_export.export_and_check(model, name, x, run.artifact_dir(name), opset=recipe.export.onnx.opset,
                                        atol=recipe.export.onnx.atol, inputs_desc=desc)


__all__ = ["ConfigError", "apply_quick", "run_pipeline"]
