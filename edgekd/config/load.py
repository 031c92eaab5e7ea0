"""Load a recipe from YAML, validate it, resolve paths, report errors by dotted key."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edgekd.config.schema import Recipe
from edgekd.errors import ConfigError, EdgekdError

MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_NODES = 100_000
BUILTIN_RECIPES = Path(__file__).resolve().parents[2] / "models"


def builtin_recipe_path(name: str = "cellsort") -> Path:
    """Path of a recipe shipped in ``models/``."""
    path = BUILTIN_RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"built-in recipe '{name}' not found at {path}",
            fix="install edgekd from its source tree (pip install -e .) so models/ is present",
        )
    return path


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<recipe>"


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    where = _dotted(tuple(p for p in err["loc"] if not str(p).startswith("function-")))
    found = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        return where, "unknown key (check its spelling and the schema in edgekd/config/schema.py)"
    if kind == "missing":
        return where, "required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    shown = repr(found)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return where, f"{msg}; found {shown}"


def validation_error(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        where, what = _describe(err)
        lines.append(f"  {where}: {what}")
    return ConfigError(
        f"recipe is invalid ({len(lines)} problem{'s' if len(lines) > 1 else ''}):\n" + "\n".join(lines),
        where=source,
        fix="correct the keys above; `edgekd run --help` points at the schema",
    )


def parse_recipe(data: Any, *, source: str = "<recipe>", base_dir: Path | None = None) -> Recipe:
    """Validate already-parsed YAML data into a :class:`Recipe`."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping at the top level, found {type(data).__name__}",
            where=source,
            fix="a recipe is a YAML mapping with keys like name, data, teacher, students",
        )
    _check_finite(data, source)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source) from None
    except RecursionError:
        raise ConfigError("recipe is nested too deeply (a recursive YAML alias?)", where=source) from None
    _resolve_paths(recipe, base_dir or Path.cwd())
    _check_registries(recipe, source)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and resolve a recipe file. Never executes code from it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "recipe file not found",
            where=str(path),
            fix="give the path of a YAML recipe, or omit it to use the built-in cellsort recipe",
        )
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise ConfigError(f"recipe file is {path.stat().st_size:,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}",
                          where=str(path), fix="is this the right file? A recipe is a short YAML mapping")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read recipe: {exc}", where=str(path)) from None
    try:
        _check_expanded_size(yaml.compose(text, Loader=yaml.SafeLoader), str(path))
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError("recipe is nested too deeply", where=str(path),
                          fix="a recipe is a few levels of mappings and lists") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"malformed YAML: {problem}", where=loc, fix="fix the YAML syntax at that line"
        ) from None
    return parse_recipe(data, source=str(path), base_dir=path.parent.resolve())


def _check_expanded_size(node: Any, source: str) -> None:
    """Refuse YAML whose aliases expand to more than :data:`MAX_RECIPE_NODES` nodes (an alias bomb)."""
    memo: dict[int, int] = {}

    def size(n: Any) -> int:
        if id(n) in memo:
            return memo[id(n)]
        memo[id(n)] = 1  # a recursive alias counts once
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        memo[id(n)] = min(total, MAX_RECIPE_NODES + 1)
        return memo[id(n)]

    if node is not None and size(node) > MAX_RECIPE_NODES:
        raise ConfigError(f"recipe expands to more than {MAX_RECIPE_NODES:,} values through YAML aliases",
                          where=source, fix="write the recipe out plainly; a recipe has a few hundred values")


def _check_finite(data: Any, source: str, where: str = "") -> None:
    """NaN and Inf are never a valid setting, also inside free-form ``params``."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{where or '<recipe>'}: {data} is not a valid value", where=source,
                          fix="give a finite number")
    if isinstance(data, dict):
        for k, v in data.items():
            _check_finite(v, source, f"{where}.{k}" if where else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _check_finite(v, source, f"{where}[{i}]")


def _resolve_paths(recipe: Recipe, base: Path) -> None:
    """Make relative paths relative to the recipe's folder and check they exist."""
    data = recipe.data
    if data.path is not None:
        p = data.path if data.path.is_absolute() else (base / data.path)
        data.path = p.resolve()
        if not data.path.exists():
            raise ConfigError(
                f"file or folder not found: {data.path}",
                where="data.path",
                fix="paths are relative to the recipe's folder; point it at your local data",
            )
    from edgekd.nets.sources import resolve_arch_path

    for net in (recipe.teacher, *recipe.students):  # arch: my_net.py:Tiny is relative to the recipe too
        net.arch = resolve_arch_path(net.arch, base)
    ck = recipe.teacher.checkpoint
    if ck is not None:
        p = ck if ck.is_absolute() else (base / ck)
        recipe.teacher.checkpoint = p.resolve()
        if not recipe.teacher.checkpoint.is_file():
            raise ConfigError(
                f"teacher checkpoint not found: {recipe.teacher.checkpoint}",
                where="teacher.checkpoint",
                fix="remove the key to train a teacher, or give the path of a .pt checkpoint",
            )


def _check_registries(recipe: Recipe, source: str) -> None:
    from edgekd.distill.losses import LOSSES
    from edgekd.nets import NETS

    problems = []
    if recipe.teacher.arch not in NETS and ":" not in recipe.teacher.arch:  # "src:name": built when used
        problems.append(f"  teacher.arch: unknown architecture '{recipe.teacher.arch}'; valid: {sorted(NETS)}")
    for i, s in enumerate(recipe.students):
        if s.arch not in NETS and ":" not in s.arch:
            problems.append(f"  students[{i}].arch: unknown architecture '{s.arch}'; valid: {sorted(NETS)}")
        for j, term in enumerate(s.loss):
            if term.method not in LOSSES:
                problems.append(
                    f"  students[{i}].loss[{j}]: unknown method '{term.method}'; valid: {sorted(LOSSES)}"
                )
                continue
            bad = LOSSES[term.method].unknown_params(term.params)
            if bad:
                problems.append(
                    f"  students[{i}].loss[{j}].{term.method}: unknown parameter(s) {bad}; "
                    f"valid: {LOSSES[term.method].param_names()}"
                )
                continue
            try:  # bad values (a missing hook path, an unknown mode) fail now, not mid-run
                LOSSES[term.method](**term.params)
            except EdgekdError as exc:
                problems.append(f"  students[{i}].loss[{j}].{term.method}: {exc.what}")
            except (TypeError, ValueError) as exc:
                problems.append(f"  students[{i}].loss[{j}].{term.method}: {exc}")
    if problems:
        raise ConfigError(
            "recipe is invalid:\n" + "\n".join(problems),
            where=source,
            fix="correct the entries above (where a name is unknown, the valid ones are listed)",
        )
