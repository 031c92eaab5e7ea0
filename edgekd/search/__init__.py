"""``edgekd search``: students chosen by the budget.

The recipe's ``search:`` section names the space (student families with their choices and
the target's knobs); the target prices each candidate (estimated, simulated or measured,
labelled); distillation on the cached teacher scores it, rung by rung, weak trials stopped
early; Optuna samples (multi-objective, the budget as constraints), in this process or on
Ray Tune. The result is the Pareto front (accuracy × latency × resources) and the best
student under the budget, exported through the normal target with its fidelity check.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekd.errors import ConfigError, EdgekdError
from edgekd.search.budget import Budget, parse_budget
from edgekd.search.pareto import pareto_front

__all__ = ["Budget", "SearchResult", "parse_budget", "pareto_front", "search"]


class BudgetUnreachable(EdgekdError):
    """No fully trained candidate meets the budget."""


@dataclass
class SearchResult:
    out: Path
    target: str
    budget: dict[str, float]
    counts: dict[str, int]
    front: list[dict[str, Any]]
    best: dict[str, Any] | None
    seconds: float
    status: str  # ok | failed (the chosen student's export failed its check) | unreachable
    closest: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    trials: int = 0  # Optuna trials asked (a repeated candidate is one record, never retrained)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def _recipe(recipe: Any):
    from edgekd.config import load_recipe

    r = load_recipe(recipe) if isinstance(recipe, (str, Path)) else recipe.model_copy(deep=True)
    if r.search is None:
        raise ConfigError("the recipe has no 'search:' section", where=str(recipe) if isinstance(recipe, (str, Path))
                          else "recipe", fix="add search: {families: [{arch: cellsort-cnn-q, params: {channels: [4, 8, "
                                             "16]}}], trials: 20} (see the README's search section)")
    return r


def _check_families(r, target: str) -> None:
    from edgekd.search.costs import accepts, check_target

    check_target(target)
    reasons = [accepts(target, f.arch.endswith("-q")) for f in r.search.families]
    if all(reasons):
        raise ConfigError(f"no search family suits target {target}: {reasons[0]}", where="search.families",
                          fix="add a family the target takes")


def search(recipe: Any, *, target: str, out: str | Path, budget: str | dict | None = None, trials: int | None = None,
           workers: int = 1, address: str | None = None, quick: bool = False, resume: bool = False,
           overwrite: bool = False, progress: bool = True, export_best: bool = True, budget_on: str = "upper",
           log: Callable[[str], None] | None = None) -> SearchResult:
    """Search ``recipe``'s space for ``target`` under ``budget``; see the module docstring."""
    from edgekd.pipeline import _ToolsLog
    from edgekd.runs.guard import RunLock

    r = _recipe(recipe)
    _check_families(r, target)
    b = parse_budget(budget if budget not in (None, "") else r.search.budget, target, budget_on)
    if trials is not None:
        if trials < 1:
            raise ConfigError(f"--trials must be ≥ 1, got {trials}", where="--trials")
        r.search.trials = trials
    if workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {workers}", where="--workers")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("the output path is a file", where=str(out), fix="give a folder for the search")
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out).acquire()
    try:
        with contextlib.redirect_stdout(_ToolsLog(out)):
            return _search(r, target, out, b, workers, address, quick, resume, overwrite, progress, export_best, log)
    finally:
        lock.release()


def _search(r, target, out, b, workers, address, quick, resume, overwrite, progress, export_best, log):
    from edgekd.search import engine
    from edgekd.search.context import open_search
    from edgekd.search.space import SearchSpace, check_space
    from edgekd.search.trial import build, records

    t0 = time.perf_counter()
    ctx = open_search(r, out, quick=quick, resume=resume, overwrite=overwrite, progress=progress, log=log)
    space = SearchSpace(ctx.recipe.search, target)
    check_space(ctx.recipe.search, lambda c: build(c, ctx))
    n = ctx.recipe.search.trials
    ctx.log(f"[search] {target}: {n} trials, budget {b.text()}, rungs {ctx.recipe.search.epochs} epochs"
            + (f", {workers} Ray workers" if workers > 1 or address else ""))
    if workers > 1 or address:
        engine.run_ray(space, ctx, target, b, n, workers=workers, address=address, seed=ctx.recipe.search.seed,
                       log=ctx.log)
    else:
        study, _ = engine.open_study(out, space, b, ctx.recipe.search.seed, n, ctx.log)
        engine.run_local(study, space, ctx, target, b, n, progress)
    res = _conclude(ctx, records(ctx), target, b, export_best, time.perf_counter() - t0, n)
    return res


def _conclude(ctx, recs, target: str, b: Budget, export_best: bool, seconds: float, n_trials: int) -> SearchResult:
    from edgekd.search.finalize import finalize
    from edgekd.search.output import closest, front_of

    from edgekd.search.costs import Cost

    for r in recs:  # judged by this call's budget (a resumed search may bring another)
        if r.cost:
            figs = Cost(**r.cost).budget_figures(r.val_accuracy, b.on)
            r.violations, r.budget_met = b.violations(figs), r.status == "complete" and b.met(figs)
    counts = {s: sum(r.status == s for r in recs) for s in ("complete", "pruned", "over-budget", "failed")}
    front = front_of(recs)
    feasible = [r for r in recs if r.status == "complete" and r.budget_met]
    best_rec = max(feasible, key=lambda r: (r.val_accuracy or 0, -r.objectives()[1])) if feasible else None
    res = SearchResult(ctx.out, target, dict(b.limits), counts, front, None, seconds,
                       "ok" if best_rec else "unreachable", points=[r.point() for r in recs], trials=n_trials)
    if best_rec is None:
        res.closest = [{**c.point(), "violations": c.violations} for c in closest(recs, b)]
    elif export_best:
        res.best = finalize(ctx, best_rec, target, b)
        if not res.best["fidelity_ok"]:
            res.status = "failed"
    else:
        res.best = {"candidate": best_rec.candidate, "label": best_rec.label}
    _write(ctx, recs, res, b)
    ctx.log(f"[search] {counts['complete']} trained, {counts['pruned']} pruned, {counts['over-budget']} over budget "
            f"untrained, {counts['failed']} failed; front of {len(front)} in {seconds / 60:.1f} min")
    if best_rec is None:
        _unreachable(res, recs, b)
    return res


def _write(ctx, recs, res: SearchResult, b: Budget) -> None:
    from edgekd.runs.atomic import write_json, write_text
    from edgekd.search.output import plot, table

    rname = "part" if res.target.startswith("fpga") else "params"
    write_json(ctx.out / "search.json", res.to_dict())
    best = res.best or {}
    md = (f"# Search on {res.target}\n\nBudget: {b.text()}. Trials: {json.dumps(res.counts)}. "
          f"Wall time {res.seconds / 60:.1f} min.\n\n## Pareto front (fully trained trials)\n\n"
          + table(recs, res.front, rname)
          + (f"\nChosen: **{best.get('label')}**; by the target's own figures: {best.get('target_figures')}; "
             f"meets the budget: {best.get('meets_budget_by_target')}; fidelity ok: {best.get('fidelity_ok')}\n"
             if best else "\nNo trained student meets the budget.\n"))
    write_text(ctx.out / "search.md", md)
    try:
        plot(recs, res.front, b, ctx.out / "front.png", f"{res.target}: {b.text()}")
    except (ImportError, ValueError, OSError) as exc:  # a plot is a convenience: its failure is logged
        ctx.log(f"[search] front.png not written: {exc}")


def _unreachable(res: SearchResult, recs, b: Budget) -> None:
    from edgekd.search.output import closest, fmt_point

    rname = "part" if res.target.startswith("fpga") else "params"
    near = closest(recs, b)
    lines = "; ".join(f"{fmt_point(r, rname)} (over by " + ", ".join(
        f"{k} {100 * v:.0f} %" for k, v in r.violations.items() if v > 0) + ")" for r in near)
    raise BudgetUnreachable(f"no trained student meets the budget {b.text()}",
                            where=str(res.out / "search.json"),
                            fix=("closest points: " + lines if near else "no trial finished training; raise --trials")
                            + "; loosen the budget or widen the search space")
