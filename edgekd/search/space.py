"""The search space of a recipe's ``search:`` section, sampled define-by-run (Optuna, Ray Tune).

A family's parameter that is a list is a choice; a mapping whose values are lists (such as
``layer_bits: {conv1: [4, 8], fc: [4, 8]}``) is one choice per key; anything else is fixed.
The target's knobs (``search.knobs.<target>``) follow the same rule. Choices are named
``f<i>.<param>`` / ``f<i>.<param>.<key>`` / ``target.<knob>``, so families never share one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from edgekd.errors import ConfigError


@dataclass(frozen=True)
class Candidate:
    """One student to try: arch, parameters, the target's knobs."""

    arch: str
    params: dict[str, Any]
    knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return self.arch.endswith("-q")

    @property
    def key(self) -> str:
        blob = json.dumps({"arch": self.arch, "params": self.params, "knobs": self.knobs}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        short = ",".join(f"{k}={_short(v)}" for k, v in sorted(self.params.items()))
        knobs = ",".join(f"{k}={_short(v)}" for k, v in sorted(self.knobs.items()))
        return f"{self.arch}({short})" + (f" [{knobs}]" if knobs else "")

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "params": self.params, "knobs": self.knobs, "key": self.key}


def _short(v: Any) -> str:
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)


def _choices(v: Any) -> list[Any]:
    if not v:
        raise ConfigError("a choice list is empty", where="search", fix="give at least one value")
    return list(v)


def _suggest(trial, name: str, v: Any) -> Any:
    if isinstance(v, list):
        options = _choices(v)
        if len(options) == 1:
            return options[0]
        # Optuna's categorical choices must be scalars: index lists of lists by position
        if all(isinstance(o, (int, float, str, bool)) or o is None for o in options):
            return trial.suggest_categorical(name, options)
        return options[trial.suggest_categorical(name, list(range(len(options))))]
    if isinstance(v, dict) and v and all(isinstance(x, list) for x in v.values()):
        return {k: _suggest(trial, f"{name}.{k}", x) for k, x in v.items()}
    return v


class SearchSpace:
    def __init__(self, search_cfg: Any, target: str | None = None):
        from edgekd.search.costs import accepts

        self.cfg = search_cfg
        self.knobs = dict(search_cfg.knobs.get(target, {})) if target else {}
        # families the target cannot take are left out of the space (index kept stable by position)
        self.families = [f for f in search_cfg.families
                         if target is None or accepts(target, f.arch.endswith("-q")) is None]

    def suggest(self, trial) -> Candidate:
        """Define-by-run: the trial's family, then that family's parameters, then the knobs."""
        i = 0
        if len(self.families) > 1:
            i = trial.suggest_categorical("family", list(range(len(self.families))))
        fam = self.families[i]
        params = {k: _suggest(trial, f"f{i}.{k}", v) for k, v in fam.params.items()}
        knobs = {k: _suggest(trial, f"target.{k}", v) for k, v in self.knobs.items()}
        return Candidate(fam.arch, params, knobs)

    def define_by_run(self, trial) -> dict[str, Any]:
        """For Ray Tune's OptunaSearch: the candidate as a config dict."""
        c = self.suggest(trial)
        return {"candidate": json.dumps({"arch": c.arch, "params": c.params, "knobs": c.knobs})}


def candidate_from_config(config: dict[str, Any]) -> Candidate:
    d = json.loads(config["candidate"])
    return Candidate(d["arch"], d["params"], d["knobs"])


def check_space(search_cfg: Any, build) -> None:
    """Every family builds with its first choices (a typo in a parameter fails before any training)."""
    for i, fam in enumerate(search_cfg.families):
        params = {k: (v[0] if isinstance(v, list) and v else
                      {kk: vv[0] for kk, vv in v.items()} if isinstance(v, dict) and v
                      and all(isinstance(x, list) for x in v.values()) else v) for k, v in fam.params.items()}
        try:
            build(Candidate(fam.arch, params, {}))
        except ConfigError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError(f"search family {i} ({fam.arch}) does not build: {exc}", where=f"search.families[{i}]",
                              fix="check the family's arch and parameter names") from None
