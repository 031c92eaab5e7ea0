"""Sampling and running trials: Optuna (multi-objective TPE with the budget as constraints),
in this process or on Ray Tune (``workers`` > 1 or a cluster ``address``).

The Optuna study lives in ``search.db`` (SQLite) and every trial's record in ``trials/``:
a killed search resumes — trials that were running are re-queued with the same
parameters (their training resumes from its checkpoints), finished ones are not repeated.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgekd.errors import ToolMissingError
from edgekd.search.budget import Budget
from edgekd.search.space import SearchSpace, candidate_from_config
from edgekd.search.trial import TrialRecord, load_record, run_trial

STUDY = "edgekd-search"
METRICS = ["accuracy", "latency_us", "resource"]
MODES = ["max", "min", "min"]


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ToolMissingError("optuna is not installed; edgekd search samples with it", where="search",
                               fix="pip install optuna==5.0.0 (an edgekd dependency)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class RecordConstraints:
    """Optuna's constraints_func: the budget's violations, read from the trial's record (≤ 0 feasible).

    A class, not a closure: Ray Tune pickles the searcher (and with it the sampler) for its checkpoints."""

    def __init__(self, trials_dir: Path, space: SearchSpace, budget: Budget):
        self.trials_dir, self.space, self.budget = trials_dir, space, budget

    def __call__(self, frozen) -> list[float]:
        n = max(len(self.budget.limits), 1)
        try:
            cand = self.space.suggest(_Replay(frozen.params))
        except KeyError:
            return [1.0] * n
        rec = load_record(self.trials_dir / f"{cand.key}.json")
        if rec is None or not self.budget.limits:
            return [0.0] * n
        return [rec.violations.get(k, 1.0) for k in self.budget.limits]


class _Replay:
    """A stand-in Optuna trial that replays stored parameters through the define-by-run space."""

    def __init__(self, params: dict[str, Any]):
        self.params = params

    def suggest_categorical(self, name: str, choices):
        return self.params[name]


def _sampler(space: SearchSpace, budget: Budget, trials_dir: Path, seed: int, n_trials: int):
    import warnings

    optuna = _optuna()
    # constraints_func is deprecated in Optuna 5 in favour of Trial.set_constraint, which a Ray Tune trial
    # (OptunaSearch tells the study, not us) cannot call; it works until Optuna 7
    warnings.filterwarnings("ignore", message=".*constraints_func.*", category=FutureWarning)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 3)),
                                      constraints_func=RecordConstraints(trials_dir, space, budget))


def open_study(out: Path, space: SearchSpace, budget: Budget, seed: int, n_trials: int, log):
    """The study in ``search.db``; trials a killed search left running are failed and re-queued."""
    optuna = _optuna()
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'search.db'}")
    study = optuna.create_study(study_name=STUDY, storage=storage, directions=["maximize", "minimize", "minimize"],
                                sampler=_sampler(space, budget, out / "trials", seed, n_trials), load_if_exists=True)
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    for t in stale:
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
    if stale:
        log(f"[search] {len(stale)} trial(s) interrupted by the last stop: re-queued with the same parameters")
    return study, storage


def finished(study) -> int:
    optuna = _optuna()
    return sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
               for t in study.get_trials(deepcopy=False))


def _tell(study, trial, rec: TrialRecord) -> None:
    optuna = _optuna()
    study.tell(trial, list(rec.objectives()), state=optuna.trial.TrialState.COMPLETE)


def run_local(study, space: SearchSpace, ctx, target: str, budget: Budget, n_trials: int,
              progress: bool) -> None:
    """Trials one after another in this process."""
    from tqdm import tqdm

    todo = max(n_trials - finished(study), 0)
    for _ in tqdm(range(todo), desc="search", unit="trial", disable=not progress):
        trial = study.ask()
        cand = space.suggest(trial)
        rec = run_trial(cand, ctx, target, budget)
        _tell(study, trial, rec)


def _ray_trainable(config: dict[str, Any], recipe_json: dict[str, Any], out: str, target: str,
                   limits: dict[str, float], on: str = "upper") -> dict[str, float]:
    from edgekd.search.context import load_search

    ctx = load_search(recipe_json, Path(out))
    rec = run_trial(candidate_from_config(config), ctx, target, Budget(limits, on))
    acc, lat, res = rec.objectives()
    return {"accuracy": acc, "latency_us": lat if math.isfinite(lat) else 1e9, "resource": res,
            "status": rec.status, "key": rec.key}


def run_ray(space: SearchSpace, ctx, target: str, budget: Budget, n_trials: int, *, workers: int,
            address: str | None, seed: int, log) -> None:
    """Trials on Ray Tune: OptunaSearch (same study file) feeding ``workers`` concurrent trials."""
    try:
        import ray
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ToolMissingError("ray[tune] is not installed; --workers/--address run trials on it", where="search",
                               fix="pip install 'edgekd[search]', or search with --workers 1") from None
    study, storage = open_study(ctx.out, space, budget, seed, n_trials, log)
    todo = max(n_trials - finished(study), 0)
    if todo == 0:
        return
    # no fixed sampler seed on Ray: with one, the concurrent trials came out as repeats of each other (measured:
    # 4 trials, 2 distinct); finished candidates are never retrained (records are keyed by candidate)
    searcher = OptunaSearch(space=space.define_by_run, metric=METRICS, mode=MODES, storage=storage,
                            study_name=STUDY, sampler=_sampler(space, budget, ctx.out / "trials", None, n_trials))
    ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
             ignore_reinit_error=True, log_to_driver=False)
    try:
        trainable = tune.with_resources(
            tune.with_parameters(_ray_trainable, recipe_json=ctx.recipe.model_dump(mode="json"), out=str(ctx.out),
                                 target=target, limits=dict(budget.limits), on=budget.on), {"cpu": 1})
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=workers), num_samples=todo),
            run_config=tune.RunConfig(storage_path=str((ctx.out / "ray").resolve()), name="trials", verbose=0))
        grid = tuner.fit()
        errors = [r.error for r in grid if r.error is not None]
        if errors:
            log(f"[search] {len(errors)} Ray trial(s) raised: {errors[0]}")
    finally:
        ray.shutdown()
