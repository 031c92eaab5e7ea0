"""The search folder: data, teacher and its logit cache made once, loaded by every trial.

The folder is an edgekd run directory (lock, ``.edgekd-run`` marker, resume rules of
:mod:`edgekd.runs.guard`) with ``trials/`` (one JSON record and checkpoints per candidate),
``search.db`` (the Optuna study) and, at the end, ``search.json``/``search.md``/``front.png``
and ``artifacts/<best>/`` from the target's own export.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgekd.config.schema import Recipe, StudentConfig


@dataclass
class SearchContext:
    recipe: Recipe  # the search recipe: one placeholder student (the search's loss/train), one seed
    out: Path
    views: dict[str, Any]
    signal: Any  # TeacherSignal or None
    num_classes: int
    in_channels: int
    input_size: Any
    data: dict[str, Any]
    log: Callable[[str], None]
    progress: bool = False

    @property
    def trials_dir(self) -> Path:
        return self.out / "trials"


def search_recipe(recipe: Recipe) -> Recipe:
    """The recipe the search's run folder records: the search's own training as its one student."""
    s = recipe.search
    r = recipe.model_copy(deep=True)
    fam = s.families[0]
    first = {k: (v[0] if isinstance(v, list) and v else v) for k, v in fam.params.items()
             if not isinstance(v, dict)}
    r.students = [StudentConfig(name="search", arch=fam.arch, params=first, loss=s.loss, train=s.train,
                                export=False)]
    r.seeds = [s.seed]
    return r


def _prepare(r_, seed: int) -> tuple[Any, dict[str, Any]]:
    from edgekd.pipeline import _cache_stage, _data_stage, _teacher_stage

    _data_stage(r_)
    signals = _cache_stage(r_, seed, _teacher_stage(r_, seed)) if r_.recipe.needs_teacher else {}
    return (next(iter(signals.values())) if signals else None), {
        "class_names": r_.splits.class_names, "channels": r_.in_ch, "size": r_.recipe.data.student_size,
        "mean": r_.recipe.data.normalize.mean, "std": r_.recipe.data.normalize.std,
        "num_classes": r_.splits.num_classes}


def open_search(recipe: Recipe, out: Path, *, quick: bool, resume: bool, overwrite: bool, progress: bool,
                log: Callable[[str], None] | None = None) -> SearchContext:
    """Create (or resume) the search folder; train/load the teacher and its cache."""
    from edgekd.pipeline import _open_run

    r_ = _open_run(search_recipe(recipe), Path(out), quick=quick, resume=resume, overwrite=overwrite,
                   progress=progress, threads=None, log=log)
    if quick:  # the quick data sizes, but the search's own epochs
        r_.recipe.students[0].train = recipe.search.train
    signal, data = _prepare(r_, r_.recipe.seeds[0])
    (Path(out) / "trials").mkdir(exist_ok=True)
    return SearchContext(r_.recipe, Path(out), r_.views, signal, r_.splits.num_classes, r_.in_ch,
                         r_.recipe.data.student_size, data, r_.log, progress)


def load_search(recipe_json: dict[str, Any], out: Path) -> SearchContext:
    """In a trial worker (another process, maybe another node on a shared file system):
    the same data, teacher and cache, loaded from the folder (nothing is trained again)."""
    from edgekd.config.load import parse_recipe
    from edgekd.pipeline import Logger, _Run
    from edgekd.runs.rundir import RunDir

    recipe = parse_recipe(recipe_json, source="search worker")
    r_ = _Run(recipe, RunDir(Path(out)), Logger(None, echo=False), False, True, False)
    signal, data = _prepare(r_, recipe.seeds[0])
    return SearchContext(recipe, Path(out), r_.views, signal, r_.splits.num_classes, r_.in_ch,
                         recipe.data.student_size, data, r_.log, False)
