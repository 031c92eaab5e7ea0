"""One search trial: cost first, then distillation on the cached teacher, rung by rung.

1. The target's cost where it needs no weights (hls4ml estimate, measured CPU latency);
   a candidate over budget there is recorded ``over-budget`` and never trained.
2. The float student (a QAT candidate's float twin) is distilled; after the first rung its
   validation accuracy is compared with the best first-rung score so far, and a trial more
   than ``prune_margin`` behind stops (``pruned``).
3. A QAT candidate starts from its trained float twin (weights copied, activation scales
   calibrated) and is fine-tuned ``qat_epochs`` (``--target fpga-rtl``: da4ml's size estimate
   is checked before fine-tuning).
4. Figures that need weights (da4ml), accuracy, and the record in ``trials/<key>.json``.

A killed trial resumes from its checkpoints; a finished one is never trained again.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from edgekd.search.budget import Budget
from edgekd.search.costs import Cost, accepts, cost_error, hls_cost, measured_cost, rtl_cost
from edgekd.search.space import Candidate

FINAL = ("complete", "pruned", "over-budget", "failed")


class Pruned(Exception):
    pass


@dataclass
class TrialRecord:
    key: str
    candidate: dict[str, Any]
    label: str
    status: str = "running"  # complete | pruned | over-budget | failed
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    rung1_val_accuracy: float | None = None
    float_val_accuracy: float | None = None
    epochs: int = 0
    qat_epochs: int = 0
    params: int = 0
    cost: dict[str, Any] | None = None
    budget_met: bool | None = None
    violations: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""

    def objectives(self) -> tuple[float, float, float]:
        """(accuracy, latency_us, resource) as Optuna sees them; untrained trials score accuracy 0."""
        c = self.cost or {}
        res = [v for k, v in (c.get("resources") or {}).items() if k != "params"]
        resource = max(res) if res else float((c.get("resources") or {}).get("params", 0.0))
        return (float(self.val_accuracy or 0.0), float(c.get("latency_us", 1e9)), float(resource))

    def point(self) -> dict[str, Any]:
        acc, lat, res = self.objectives()
        return {"key": self.key, "label": self.label, "accuracy": acc, "latency_us": lat, "resource": res,
                "test_accuracy": self.test_accuracy, "status": self.status, "budget_met": self.budget_met}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_record(path) -> TrialRecord | None:
    try:
        d = json.loads(path.read_text())
        return TrialRecord(**d)
    except (OSError, ValueError, TypeError):
        return None


def records(ctx) -> list[TrialRecord]:
    out = []
    for p in sorted(ctx.trials_dir.glob("*.json")):
        r = load_record(p)
        if r is not None and r.status in FINAL:
            out.append(r)
    return out


def build(cand: Candidate, ctx) -> tuple[nn.Module, nn.Module]:
    """(float model, candidate model): the same object for float candidates."""
    import edgekd.nets.quant  # noqa: F401 (registers the *-q students)
    from edgekd.nets import create_net
    from edgekd.nets.quant import float_twin_spec

    kw = dict(num_classes=ctx.num_classes, in_channels=ctx.in_channels, input_size=ctx.input_size)
    model = create_net(cand.arch, params=cand.params, where=f"search candidate {cand.label()}", **kw)
    if not cand.quantized:
        return model, model
    arch, params = float_twin_spec(cand.arch, cand.params)
    return create_net(arch, params=params, where=f"search candidate {cand.label()} (float twin)", **kw), model


def _pre_cost(target: str, cand: Candidate, fmodel, model, ctx, runs: int) -> Cost | None:
    shape = tuple(ctx.views["val"].student.shape[1:])
    if target == "fpga-hls":
        return hls_cost(fmodel, model, shape, cand.knobs, ctx.recipe)
    if target in ("onnxruntime", "cpu-torch"):
        return measured_cost(model, ctx.views["val"].student, target, runs)
    return None


def _threshold(ctx, margin: float, me: str) -> float | None:
    """The best first-rung score of the trials that could still be chosen (not those over budget) − margin."""
    def eligible(r: TrialRecord) -> bool:
        if r.key == me or r.rung1_val_accuracy is None:
            return False
        return r.status == "pruned" or (r.status == "complete" and r.budget_met is not False)

    scores = [r.rung1_val_accuracy for r in records(ctx) if eligible(r)]
    return (max(scores) - margin) if scores else None


def _distill(model, ctx, cfg, epochs: int, *, checkpoint, desc: str, on_epoch=None):
    from edgekd.distill.losses import CompositeLoss
    from edgekd.distill.trainer import train

    tc = cfg.model_copy(update={"epochs": epochs}, deep=True)
    return train(model, ctx.views["train"], ctx.views["val"], tc, CompositeLoss.from_config(ctx.recipe.search.loss),
                 seed=ctx.recipe.search.seed, teacher=ctx.signal, checkpoint=checkpoint,
                 meta={"role": "search", "arch": desc}, desc=desc, progress=False, on_epoch=on_epoch)


def _accuracy(model, ctx, split: str) -> float:
    from edgekd.distill.trainer import accuracy, predict_logits

    v = ctx.views[split]
    return float(accuracy(predict_logits(model.eval(), v.student), v.labels))


def _save(ctx, rec: TrialRecord) -> TrialRecord:
    from edgekd.runs.atomic import write_json

    write_json(ctx.trials_dir / f"{rec.key}.json", rec.to_dict())
    return rec


def run_trial(cand: Candidate, ctx, target: str, budget: Budget) -> TrialRecord:
    """Cost, train (with pruning) and record one candidate; a finished record is returned as it is."""
    done = load_record(ctx.trials_dir / f"{cand.key}.json")
    if done is not None and done.status in FINAL:
        return done
    rec = TrialRecord(cand.key, cand.to_dict(), cand.label())
    t0 = time.perf_counter()
    try:
        _run(cand, ctx, target, budget, rec)
    except Pruned as exc:
        rec.status, rec.message = "pruned", str(exc)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        rec.status, rec.message = "failed", cost_error(exc)
    except Exception as exc:  # noqa: BLE001 - an EdgekdError from a target is a failed trial, not a dead search
        from edgekd.errors import EdgekdError

        if not isinstance(exc, EdgekdError):
            raise
        rec.status, rec.message = "failed", cost_error(exc)
    rec.seconds = time.perf_counter() - t0
    if rec.cost is not None:
        figs = Cost(**rec.cost).budget_figures(rec.val_accuracy, budget.on)
        rec.violations = budget.violations(figs)
        rec.budget_met = rec.status == "complete" and budget.met(figs)
    ctx.log(f"[search] {rec.label}: {rec.status}"
            + (f", val {100 * rec.val_accuracy:.1f} %" if rec.val_accuracy is not None else "")
            + (f", {rec.cost['latency_us']:.2f} µs ({rec.cost['latency_label']})" if rec.cost else "")
            + (f" — {rec.message}" if rec.message else ""))
    return _save(ctx, rec)


def _over(budget: Budget, cost: Cost) -> dict[str, float]:
    """What is already over budget before training (figures not known yet are judged later)."""
    figs = cost.budget_figures(None, budget.on)
    return {k: v for k, v in budget.violations(figs).items()
            if k != "accuracy" and figs.get(k) is not None and v > 0}


def _run(cand: Candidate, ctx, target: str, budget: Budget, rec: TrialRecord) -> None:
    from edgekd.nets.registry import count_parameters

    s = ctx.recipe.search
    why = accepts(target, cand.quantized)
    if why:
        rec.status, rec.message = "failed", why
        return
    fmodel, model = build(cand, ctx)
    rec.params = count_parameters(model)
    cost = _pre_cost(target, cand, fmodel, model, ctx, s.profile_runs)
    if cost is not None:
        rec.cost = cost.to_dict()
        over = _over(budget, cost)
        if over:
            rec.status = "over-budget"
            rec.message = "not trained: " + ", ".join(f"{k} {100 * v:+.0f} % over" for k, v in over.items())
            return
    rungs = s.epochs

    def check(epoch: int, row: dict[str, float]) -> None:
        if epoch + 1 == rungs[0]:
            rec.rung1_val_accuracy = float(row["val_acc"])
            bar = _threshold(ctx, s.prune_margin, rec.key)
            if len(rungs) > 1 and bar is not None and row["val_acc"] < bar:
                rec.epochs = epoch + 1
                rec.val_accuracy = float(row["val_acc"])
                raise Pruned(f"after {epoch + 1} epochs: val {100 * row['val_acc']:.1f} % < best "
                             f"{100 * (bar + s.prune_margin):.1f} % − {100 * s.prune_margin:.0f} points")

    tdir = ctx.trials_dir
    res = _distill(fmodel, ctx, s.train, rungs[-1], checkpoint=tdir / f"{cand.key}-float.pt",
                   desc=f"search {cand.key} float", on_epoch=check)
    rec.epochs = rungs[-1]
    rec.float_val_accuracy = res.val_accuracy
    if rec.rung1_val_accuracy is None and len(res.history) >= rungs[0]:
        rec.rung1_val_accuracy = float(res.history[rungs[0] - 1]["val_acc"])
    if cand.quantized:
        _finetune(cand, ctx, target, budget, rec, fmodel, model)
        if rec.status == "over-budget":
            return
    if target == "fpga-rtl":
        rec.cost = rtl_cost(model, ctx.views["val"].student, ctx.recipe).to_dict()
    rec.val_accuracy = _accuracy(model, ctx, "val")
    rec.test_accuracy = _accuracy(model, ctx, "test")
    torch.save(model.state_dict(), tdir / f"{cand.key}.pt")
    rec.status = "complete"


def _finetune(cand, ctx, target, budget, rec, fmodel, model) -> None:
    from edgekd.nets.transfer import init_from

    s = ctx.recipe.search
    ckpt = ctx.trials_dir / f"{cand.key}-qat.pt"
    if not ckpt.exists():
        # 50 calibration batches (not Brevitas' 300): a trial's budget, measured enough for per-tensor scales
        init_from(model, fmodel, ctx.views["train"].student, where=f"search {cand.label()}", seed=s.seed,
                  calibration_steps=50)
    if target == "fpga-rtl":
        cost = rtl_cost(model, ctx.views["val"].student, ctx.recipe, generate=False)
        over = _over(budget, cost)
        if over or not cost.details.get("fits", True):
            rec.cost, rec.status = cost.to_dict(), "over-budget"
            rec.message = ("not fine-tuned: " + ", ".join(f"{k} {100 * v:+.0f} % over" for k, v in over.items())
                           if over else "not fine-tuned: does not fit the part fully unrolled")
            return
    ft = s.train.model_copy(update={"optim": s.train.optim.model_copy(update={"lr": s.qat_lr})}, deep=True)
    _distill(model, ctx, ft, s.qat_epochs, checkpoint=ckpt, desc=f"search {cand.key} qat")
    rec.qat_epochs = s.qat_epochs
