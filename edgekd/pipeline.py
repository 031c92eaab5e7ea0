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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
from edgekd.profile import LatencyResult, capture_environment
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
    """Create the run directory; refuse to touch an existing run unless asked to, and never
    delete or resume into a folder that is not an edgekd run. The caller holds its :class:`RunLock`."""
    from edgekd.runs import guard

    run = RunDir(out)
    saved = out / "recipe.json"
    guard.check_out_path(out)
    if out.exists() and any(out.iterdir()):
        if overwrite:
            guard.check_replaceable(out)
            shutil.rmtree(out)
        elif not resume:
            raise EdgekdError("run directory already exists", where=str(out),
                              fix="pass --resume to continue it, --out DIR for a new run, or --overwrite to replace it")
        else:
            if not guard.is_run_dir(out):
                raise EdgekdError(f"--resume refused: this folder is not an edgekd run directory "
                                  f"(it holds {guard.describe_contents(out)})", where=str(out),
                                  fix="give the folder of an earlier `edgekd run`, or --out DIR for a new run")
            if saved.exists() or any((out / "checkpoints").glob("*.pt")):  # anything trained must match
                guard.check_resume(guard.read_saved_recipe(saved), recipe_dump, str(out))
    run.create()
    guard.mark(run.root)
    guard.sweep_stale(run.root)  # left by a process killed mid-write (atomic writes never expose them)
    write_json(saved, recipe_dump)
    return run


class _ToolsLog(io.TextIOBase):
    """stdout of hls4ml/qonnx/da4ml, appended to ``tools.log`` as it comes (a kill loses nothing)."""

    def __init__(self, root: Path):
        self.root, self._pending = Path(root), ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.root.is_dir():  # before the run directory exists
            self._pending += text
            return len(text)
        with open(self.root / "tools.log", "a", encoding="utf-8") as fh:
            fh.write(self._pending + text)
        self._pending = ""
        return len(text)


def run_pipeline(recipe: Recipe, out: Path, *, quick: bool = False, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, threads: int | None = None,
                 log: Callable[[str], None] | None = None) -> RunResults:
    """Run every stage of ``recipe`` into the run directory ``out``; returns the results.

    Raises :class:`FidelityError` (after writing the report) when an artifact fails its check.
    hls4ml, qonnx and da4ml print their own progress on stdout: it goes to ``tools.log`` in
    the run directory, not to the console (edgekd's own log goes to stderr and ``run.log``).
    """
    from edgekd.distill import distributed as D
    from edgekd.runs.guard import RunLock

    lock = RunLock(Path(out)).acquire() if D.current().is_main else None
    try:
        with contextlib.redirect_stdout(_ToolsLog(Path(out))):
            return _run_stages(recipe, out, quick=quick, resume=resume, overwrite=overwrite, progress=progress,
                               threads=threads, log=log)
    finally:
        if lock is not None:
            lock.release()


@dataclass
class _Run:
    """The state one run carries from stage to stage."""

    recipe: Recipe
    run: RunDir
    log: Callable[[str], None]
    progress: bool
    resume: bool
    quick: bool
    stage_s: dict[str, float] = field(default_factory=dict)
    models: list[ModelResult] = field(default_factory=list)
    trained: dict[tuple[str, int], nn.Module] = field(default_factory=dict)
    splits: Any = None
    views: dict[str, PairedViews] = field(default_factory=dict)
    data_info: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, stage: str):
        t = time.perf_counter()
        yield
        self.stage_s[stage] = self.stage_s.get(stage, 0.0) + time.perf_counter() - t

    @property
    def in_ch(self) -> int:
        return int(self.views["train"].student.shape[1])

    @property
    def t_ch(self) -> int:  # differs from in_ch when data.teacher_channels converts gray↔RGB
        return int(self.views["train"].teacher.shape[1])


def _run_stages(recipe: Recipe, out: Path, *, quick: bool, resume: bool, overwrite: bool, progress: bool,
                threads: int | None, log: Callable[[str], None] | None) -> RunResults:
    from edgekd.distill import distributed as D

    r = _open_run(recipe, Path(out), quick=quick, resume=resume, overwrite=overwrite, progress=progress,
                  threads=threads, log=log)
    with r.timed("data"):
        _data_stage(r)
    for seed in r.recipe.seeds:
        with r.timed("teacher"):
            teacher = _teacher_stage(r, seed)
        with r.timed("teacher_cache"):
            signals = _cache_stage(r, seed, teacher)
        with r.timed("students"):
            _students_stage(r, seed, signals)
    D.barrier()
    if not D.current().is_main:  # workers are done once training is
        return RunResults(r.recipe.name, "worker", quick, list(r.recipe.seeds), r.data_info, r.models, [], [], {},
                          r.stage_s)
    return _deploy_stage(r)


def _open_run(recipe: Recipe, out: Path, *, quick: bool, resume: bool, overwrite: bool, progress: bool,
              threads: int | None, log: Callable[[str], None] | None) -> _Run:
    """Resolve ``--quick``, create (rank 0) or join the run directory, set up the log."""
    from edgekd.distill import distributed as D

    if quick:
        recipe = apply_quick(recipe)
    ddp = D.current()
    if ddp.is_main:  # under torchrun, rank 0 alone creates, logs and writes
        run = prepare_run_dir(out, {"quick": quick, **recipe.model_dump(mode="json")}, resume=resume,
                              overwrite=overwrite)
    D.barrier()
    if not ddp.is_main:
        run, progress = RunDir(out), False
    log = log or Logger(run.root / "run.log" if ddp.is_main else None, echo=ddp.is_main)
    if ddp.enabled:
        log(f"[dist] {ddp.world_size} processes; global batch = each recipe batch_size, split across ranks")
    if threads:
        torch.set_num_threads(threads)
    return _Run(recipe, run, log, progress, resume, quick)


def _data_stage(r: _Run) -> None:
    from edgekd.distill import distributed as D

    d = r.recipe.data
    r.log(f"[data] {d.kind} dataset, classes {d.classes or 'all'}")
    check_recipe_models(r.recipe)  # from the data's headers: nothing trains (or allocates) for a recipe that fails
    r.splits = splits = build_splits(d)
    r.views = {k: PairedViews.from_images(getattr(splits, k), d.teacher_size, d.student_size, d.normalize,
                                          channels=d.channels, teacher_channels=d.teacher_channels)
               for k in ("train", "val", "test")}
    r.log(f"[data] {splits.sizes()} classes={splits.class_names} channels={r.in_ch}")
    if d.kind == "imagefolder":  # channels and classes are known now
        _probe_models(r.recipe, splits.num_classes, r.in_ch, r.t_ch)
    r.data_info = {"source": splits.source, "classes": splits.class_names, "sizes": splits.sizes(),
                   "teacher_size": d.teacher_size, "student_size": d.student_size, **splits.info}
    if D.current().is_main:
        from edgekd.runs.guard import check_data, data_fingerprint

        check_data(r.run.root, data_fingerprint(splits), resume=r.resume)


def _teacher_stage(r: _Run, seed: int) -> nn.Module:
    """Train the teacher, or load it (an edgekd checkpoint, or a model file from anywhere)."""
    tc, d, n_cls = r.recipe.teacher, r.recipe.data, r.splits.num_classes
    seed_everything(seed)
    meta = _meta("teacher", tc.arch, tc.params, n_cls, d.teacher_size, seed, tc.train)
    history, seconds, resumed = [], 0.0, None
    if tc.checkpoint is not None and not is_edgekd_checkpoint(tc.checkpoint):
        # a teacher trained elsewhere: state dict, TorchScript, .pt2 or ONNX (checked against the data)
        teacher = load_model_file(tc.checkpoint, arch=tc.arch, params=tc.params, num_classes=n_cls,
                                  in_channels=r.t_ch, input_size=d.teacher_size)
    else:
        teacher = create_net(tc.arch, num_classes=n_cls, in_channels=r.t_ch, input_size=d.teacher_size,
                             params=tc.params, where="teacher")
    if tc.checkpoint is not None and is_edgekd_checkpoint(tc.checkpoint):
        blob = load_checkpoint(tc.checkpoint, {k: meta[k] for k in ("arch", "num_classes", "input_size")})
        try:
            teacher.load_state_dict(blob["model"])
        except RuntimeError as exc:
            raise EdgekdError(f"checkpoint does not fit teacher '{tc.arch}': {str(exc).splitlines()[0]}",
                              where=str(tc.checkpoint), fix="train a teacher with this recipe first") from None
        history = blob.get("history", [])
    elif tc.checkpoint is None:
        res = train(teacher, r.views["train"], r.views["val"], tc.train, CompositeLoss([("ce", 1.0, {})]),
                    seed=seed, view="teacher", checkpoint=r.run.checkpoint("teacher", seed), meta=meta,
                    desc=f"teacher seed {seed}", progress=r.progress)
        history, seconds, resumed = res.history, res.seconds, res.resumed_from_epoch
    teacher.eval()
    _record(r, "teacher", "teacher", tc.arch, teacher, seed, seconds, history=history, resumed_from_epoch=resumed)
    return teacher


def _record(r: _Run, name: str, role: str, arch: str, model: nn.Module, seed: int, seconds: float, **kw) -> None:
    """Test/val accuracy and per-class metrics of a trained model (NaN/Inf outputs are an error)."""
    view = "teacher" if role == "teacher" else "student"
    test_logits = _finite_logits(model, getattr(r.views["test"], view), f"{name} seed {seed}")
    acc = accuracy(test_logits, r.views["test"].labels)
    val = accuracy(_finite_logits(model, getattr(r.views["val"], view), f"{name} seed {seed}"), r.views["val"].labels)
    metrics = classification_metrics(test_logits, r.views["test"].labels, r.splits.class_names).to_dict()
    r.models.append(ModelResult(name, role, arch, count_parameters(model), seed, acc, val, seconds, metrics=metrics,
                                **kw))
    r.trained[(name, seed)] = model
    r.log(f"[{role}] {name + ' ' if role != 'teacher' else ''}seed {seed}: test acc {100 * acc:.2f} % "
          f"({count_parameters(model):,} params)")


def _cache_stage(r: _Run, seed: int, teacher: nn.Module) -> dict[str, TeacherSignal]:
    """Teacher outputs for every training sample × view, once per augmentation the students use."""
    from edgekd.distill import distributed as D
    from edgekd.distill.losses import teacher_taps_for

    users = [s for s in r.recipe.students if s.uses_teacher]
    signals: dict[str, TeacherSignal] = {}
    for key, aug in sorted({augment_key(s.train.augment): s.train.augment for s in users}.items()):
        terms = [t for s in users if augment_key(s.train.augment) == key for t in s.loss]
        main = D.current().is_main
        if not main:
            D.barrier()  # rank 0 computes the cache once; the others load its file
        cache = build_teacher_cache(teacher, r.views["train"], aug, path=r.run.cache / f"teacher-seed{seed}-{key}.pt",
                                    progress=r.progress, taps=teacher_taps_for(terms), feature_dtype=torch.float16,
                                    log=r.log)
        if main:
            D.barrier()
        signals[key] = TeacherSignal(cache=cache)
        r.log(f"[cache] teacher logits for {len(r.views['train'])} samples × {cache.transforms} views")
    return signals


def _students_stage(r: _Run, seed: int, signals: dict[str, TeacherSignal]) -> None:
    for s in r.recipe.students:
        start = r.trained[(s.init, seed)] if s.init else None
        student, res = _train_student(s, seed, r.views, r.splits.num_classes, r.in_ch, r.recipe.data.student_size,
                                      signals.get(augment_key(s.train.augment)), r.run, r.progress, start=start,
                                      log=r.log)
        _record(r, s.name, "student", s.arch, student, seed, res.seconds, loss=[t.model_dump() for t in s.loss],
                history=res.history, resumed_from_epoch=res.resumed_from_epoch)


def _deploy_stage(r: _Run) -> RunResults:
    """Export + fidelity, profile and report, for the first seed's models."""
    recipe, d, seed0 = r.recipe, r.recipe.data, r.recipe.seeds[0]
    exported = {name: r.trained[(name, seed0)] for name in ["teacher"] + [s.name for s in recipe.students if s.export]}
    data = {"class_names": r.splits.class_names, "channels": r.in_ch, "size": d.student_size,
            "mean": d.normalize.mean, "std": d.normalize.std, "num_classes": r.splits.num_classes}
    with r.timed("export"):
        out = export_targets(recipe, exported, r.views, r.run, data, r.log,
                             desc=f"test split, first {{n}} images (seed {seed0} models)")
    with r.timed("profile"):
        latencies = out.latencies + profile_targets(recipe, exported, r.views, out.artifacts, r.log)
    return _report(recipe, r.run, r.quick, recipe.model_dump(mode="json"), r.data_info, r.models, out, latencies,
                   r.stage_s, r.log)


def export_targets(recipe: Recipe, models: dict[str, nn.Module], views, run: RunDir, data: dict[str, Any],
                   log: Callable[[str], None], desc: str = "test split, first {n} images"):
    """Every enabled export target × every model it accepts. Background work (the RTL build) runs while
    the next targets export; a target that cannot convert a model fails that artifact, not the run."""
    from edgekd.targets.base import TargetOutput, all_targets

    targets = [t for t in all_targets() if t.exports and t.enabled(recipe)]
    pending, out = [], TargetOutput()
    try:
        for tgt in targets:
            for name, model in models.items():
                if name == "teacher" and not tgt.teacher_too:
                    continue
                ctx = _export_context(recipe, name, model, views, run, data, log, desc)
                why = tgt.accepts(model, tuple(ctx.x_test.shape[1:]))
                if why:
                    log(f"[export] {name} → {tgt.name} skipped: {why}")
                    continue
                pending.append(_start_target(tgt, ctx))
        for job in pending:
            done = job.finish()
            out.artifacts += done.artifacts
            out.latencies += done.latencies
            out.fpga += done.fpga
    finally:
        for job in pending:
            job.cancel()
    return out


def _export_context(recipe: Recipe, name: str, model: nn.Module, views, run: RunDir, data: dict[str, Any], log,
                    desc: str):
    from edgekd.targets.base import ExportContext

    view = "teacher" if name == "teacher" else "student"
    return ExportContext(name=name, model=model, out_dir=run.artifact_dir(name), x_test=getattr(views["test"], view),
                         x_train=getattr(views["train"], view), x_val=getattr(views["val"], view), recipe=recipe,
                         data=data, log=log, desc=desc)


def _start_target(tgt, ctx):
    """Start one export; a user-facing failure (an unsupported layer, a missing tool) fails that artifact only."""
    from edgekd.targets.base import Pending, TargetOutput

    try:
        return tgt.start(ctx)
    except EdgekdError as exc:
        ctx.log(f"[export] {ctx.name} → {tgt.name} failed: {exc.message}")
        art = Artifact(model=ctx.name, target=tgt.name, format="-", path=ctx.out_dir, fidelity=None, error=exc.message)
        return Pending(TargetOutput(artifacts=[art]))


def profile_targets(recipe: Recipe, models: dict[str, nn.Module], views, artifacts: list[Artifact],
                    log: Callable[[str], None]) -> list[LatencyResult]:
    """Every target's latency rows for every exported model (batch sizes from ``profile``)."""
    from edgekd.targets.base import all_targets

    rows: list[LatencyResult] = []
    for name, model in models.items():
        x = (views["test"].teacher if name == "teacher" else views["test"].student)[:1]
        mine = {a.target: a for a in artifacts if a.model == name}
        got = [r for t in all_targets() if t.teacher_too or name != "teacher"
               for r in t.profile(name, model, x, mine, recipe, log)]
        rows += got
        best = [r for r in got if r.batch_size == 1 and r.method == "measured"]
        log(f"[profile] {name}: " + ", ".join(f"{r.target} p50 {r.p50_us:,.1f} µs / p99 {r.p99_us:,.1f} µs"
                                               for r in best))
    return rows


def _report(recipe: Recipe, run: RunDir, quick: bool, dump: dict, data_info: dict, models: list, out,
            latencies: list[LatencyResult], stage_s: dict[str, float], log) -> RunResults:
    failed = [a for a in out.artifacts if not a.deployable]
    problems = [f"{a.model} {a.target} artifact failed its fidelity check: "
                f"{a.fidelity.summary() if a.fidelity else a.error}" for a in failed]
    status = "failed" if failed else "ok"
    results = RunResults(recipe.name, status, quick, list(recipe.seeds), data_info, models, out.artifacts, latencies,
                         capture_environment(), stage_s, problems, fpga=[f.to_dict() for f in out.fpga],
                         reference=recipe.reference.model_dump() if recipe.reference else None)
    paths = write_report(results, run.root)
    write_manifest(run, recipe=dump, seeds=list(recipe.seeds), quick=quick, status=status,
                   extra={"artifacts": {f"{a.model}:{a.target}": a.status for a in out.artifacts}})
    log(f"[report] {paths['md']}")
    if failed:
        raise FidelityError("; ".join(problems), where=str(run.root),
                            fix="see report.md; failed artifacts are marked and must not be deployed")
    return results


def _probe_models(recipe: Recipe, n_cls: int, in_ch: int, t_ch: int) -> None:
    """Every model runs on its input, and the profile batches fit, before anything trains."""
    from edgekd.nets.probe import check_profile_batches, probe_net

    d, tc = recipe.data, recipe.teacher
    if tc.checkpoint is None or is_edgekd_checkpoint(tc.checkpoint):  # a teacher from a file is checked on load
        probe_net(tc.arch, tc.params, num_classes=n_cls, in_channels=t_ch, input_size=d.teacher_size, where="teacher")
    for i, s in enumerate(recipe.students):
        probe_net(s.arch, s.params, num_classes=n_cls, in_channels=in_ch, input_size=d.student_size,
                  where=f"students[{i}] ({s.name})")
    sides = [v for size in (d.teacher_size, d.student_size) for v in ((size,) if isinstance(size, int) else size)]
    check_profile_batches(recipe.profile.batch_sizes, (max(in_ch, t_ch), max(sides), max(sides)),
                          "profile.batch_sizes")


def check_recipe_models(recipe: Recipe) -> tuple[int, int] | None:
    """Probe every model on the recipe's input from the data's headers, without loading images.

    Returns (channels, classes), or None for image folders (probed once decoded, before training)."""
    from edgekd.data.build import LYMPHOMNIST_CLASSES

    d = recipe.data
    if d.kind == "imagefolder":
        return None
    in_ch, n_cls = 1, len(d.classes) if d.classes else len(LYMPHOMNIST_CLASSES)
    if d.kind == "npz":
        from edgekd.data.npz import npz_header

        in_ch, found = npz_header(d.path)
        n_cls = len(d.classes) if d.classes else found
    in_ch = d.channels or in_ch
    _probe_models(recipe, n_cls, in_ch, d.teacher_channels or in_ch)
    return in_ch, n_cls


def _finite_logits(model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    """The model's logits on ``x``; a model whose outputs are NaN/Inf is an error, not a score."""
    from edgekd.errors import TrainingError

    logits = predict_logits(model, x)
    bad = int((~torch.isfinite(logits)).any(1).sum())
    if bad:
        raise TrainingError(f"the model outputs NaN or Inf for {bad} of {len(x)} images", where=what,
                            fix="a loaded checkpoint may be damaged, or training diverged: retrain it, or check "
                                "the data for NaN/Inf")
    return logits


def _train_student(s: StudentConfig, seed: int, views, n_cls: int, in_ch: int, size: int,
                   signal: TeacherSignal | None, run: RunDir, progress: bool, *, start: nn.Module | None = None,
                   log: Callable[[str], None] | None = None):
    seed_everything(seed)
    student = create_net(s.arch, num_classes=n_cls, in_channels=in_ch, input_size=size, params=s.params,
                         where=f"students.{s.name}")
    if start is not None and not run.checkpoint(s.name, seed).exists():  # a checkpoint resumes instead
        from edgekd.nets.transfer import init_from

        rep = init_from(student, start, views["train"].student, where=f"students.{s.name}.init", seed=seed)
        if log:
            log(f"[student] {s.name} seed {seed}: starts from {s.init} ({rep.summary()})")
    loss = CompositeLoss.from_config(s.loss)
    meta = _meta("student", s.arch, s.params, n_cls, size, seed, s.train, [t.model_dump() for t in s.loss])
    res = train(student, views["train"], views["val"], s.train, loss, seed=seed, teacher=signal,
                checkpoint=run.checkpoint(s.name, seed), meta=meta, desc=f"{s.name} seed {seed}",
                progress=progress)
    return student, res


__all__ = ["ConfigError", "apply_quick", "export_targets", "profile_targets", "run_pipeline"]
