"""Command line: ``edgekd run | validate | profile | report | list``."""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
from pathlib import Path

from edgekd.errors import EdgekdError

#: the largest model input `edgekd profile` allocates, in values per sample
MAX_PROFILE_SAMPLE = 16 << 20


def _non_negative_int(text: str) -> int:
    return _positive_int(str(int(text) + 1)) - 1 if text.lstrip("-").isdigit() else _positive_int(text)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {v}")
    return v

EPILOG = """examples:
  edgekd run                          # built-in cell-sorting recipe, full run (<20 min on 2 cores)
  edgekd run --quick                  # small data, few epochs (<3 min)
  edgekd run my.yaml --out runs/exp1  # your recipe (kind: npz or lymphomnist for your data)
  edgekd validate my.yaml             # check a recipe without running it
  edgekd list                         # architectures, loss methods, FPGA targets
"""


def _cmd_run(args: argparse.Namespace) -> int:
    from edgekd.config import builtin_recipe_path, load_recipe
    from edgekd.pipeline import run_pipeline

    from edgekd.distill import distributed as D

    recipe = load_recipe(args.recipe or builtin_recipe_path())
    out = Path(args.out) if args.out else Path("runs") / (recipe.name + ("-quick" if args.quick else ""))
    ddp = D.init_from_env()  # torchrun: join the process group (gloo on CPU, NCCL on GPU)
    try:
        results = run_pipeline(recipe, out, quick=args.quick, resume=args.resume, overwrite=args.overwrite,
                               progress=not args.no_progress, threads=args.threads)
    finally:
        D.shutdown()
    if not ddp.is_main:
        return 0
    from edgekd.report import accuracy_rows

    print(f"run: {out}  status: {results.status}")
    for r in accuracy_rows(results.models):
        print(f"  {r['name']:<16} {r['params']:>9,} params  test acc {100 * r['acc_mean']:6.2f} "
              f"± {100 * r['acc_std']:.2f} % over {r['n_seeds']} seed(s)")
    for a in results.artifacts:
        print(f"  {a.model:<16} {a.target:<12} {a.status:<7} {a.fidelity.summary() if a.fidelity else a.error}")
    print(f"report: {out / 'report.md'}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from edgekd.config import builtin_recipe_path, load_recipe

    recipe = load_recipe(args.recipe or builtin_recipe_path())
    from edgekd.pipeline import check_recipe_models  # torch is imported only for a recipe that parsed

    probed = check_recipe_models(recipe)
    print(json.dumps(recipe.model_dump(mode="json"), indent=2))
    ran = (f"every model runs on its {probed[0]}-channel input ({probed[1]} classes)" if probed else
           "models are probed on the image folder's input once it is decoded")
    print(f"recipe '{recipe.name}' is valid: {len(recipe.students)} student(s), seeds {recipe.seeds}; {ran}",
          file=sys.stderr)
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    path = Path(args.model)
    if path.is_dir() and getattr(args, "reports", None):
        from edgekd.profile.fpga_reports import compare_run

        return compare_run(path, Path(args.reports), append=args.append_calibration)
    if path.is_dir():
        return _profile_run_dir(path, args.target)
    if path.suffix == ".onnx" and args.target in (None, "onnxruntime"):
        return _profile_onnx(path, args)
    if args.target not in (None, "cpu-torch", "onnxruntime", "cuda"):
        raise EdgekdError(f"--target {args.target} needs a run directory, not a file", where=str(path),
                          fix="pass runs/<name> (written by `edgekd run`) to see its FPGA figures")
    return _profile_model_file(path, args)


def _profile_model_file(path: Path, args: argparse.Namespace) -> int:
    """A state dict (with --arch), TorchScript, .pt2 or ONNX file on cpu-torch / onnxruntime / cuda."""
    from edgekd import api

    target = args.target or "cpu-torch"
    rows = api.profile(str(path), target=target, example_input=args.input_shape, batch_sizes=args.batch,
                       runs=args.runs, warmup=args.warmup, threads=args.threads, arch=args.arch,
                       log=lambda m: print(m, file=sys.stderr))
    for r in rows:
        print(f"{path.name} {r.target} batch {r.batch_size}: p50 {r.p50_us:,.1f} µs  p90 {r.p90_us:,.1f}  "
              f"p99 {r.p99_us:,.1f}  ({r.throughput_per_s:,.0f}/s, {r.runs} runs, {r.method})")
    if args.json:
        from edgekd.runs.atomic import write_json

        write_json(Path(args.json), [r.to_dict() for r in rows])
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from edgekd import api

    path = Path(args.model)
    config = _key_values(args.set)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if path.is_dir():
        arts = api.export_run(path, target=args.target, out_dir=args.out, config=config, log=log)
    else:
        arts = api.export(str(path), target=args.target, out_dir=args.out, example_input=args.input_shape,
                          calib=args.calib, arch=args.arch, num_classes=args.num_classes, config=config, log=log)
    if not arts:
        raise EdgekdError(f"nothing was exported: target {args.target} did not take the model (the line above "
                          "says why)", where=str(path), fix="choose another --target")
    for a in arts:
        print(f"{a.model:<16} {a.target:<12} {a.status:<7} {a.path}  "
              f"{a.fidelity.summary() if a.fidelity else a.error}")
    return 3 if any(not a.deployable for a in arts) else 0


def _key_values(items: list[str] | None) -> dict:
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdgekdError(f"--set {item!r}: expected KEY=VALUE, e.g. io_type=io_parallel", where="--set")
        out[key] = yaml.safe_load(value)
    return out


def _cmd_distill(args: argparse.Namespace) -> int:
    from edgekd import api
    from edgekd.config import builtin_recipe_path

    recipe = args.recipe or builtin_recipe_path()
    out = Path(args.out) if args.out else Path("runs") / (Path(recipe).stem + "-distill")
    res = api.distill(recipe, out=out, quick=args.quick, resume=args.resume, overwrite=args.overwrite,
                      progress=not args.no_progress)
    from edgekd.report import accuracy_rows

    print(f"run: {out}  status: {res.status}")
    for r in accuracy_rows(res.models):
        print(f"  {r['name']:<16} {r['params']:>9,} params  test acc {100 * r['acc_mean']:6.2f} "
              f"± {100 * r['acc_std']:.2f} % over {r['n_seeds']} seed(s)")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from edgekd.search import search

    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.recipe).stem}-search-{args.target}"
    res = search(args.recipe, target=args.target, out=out, budget=args.budget, trials=args.trials,
                 workers=args.workers, address=args.address, quick=args.quick, resume=args.resume,
                 overwrite=args.overwrite, progress=not args.no_progress, export_best=not args.no_export,
                 budget_on=args.budget_on)
    print((out / "search.md").read_text())
    print(f"search: {out}  status: {res.status}")
    return 0 if res.status == "ok" else 1


def _onnx_input(path: Path):
    """A batch-1 random input for the ONNX model's first input, read without its external weights."""
    import numpy as np
    import onnx

    if not path.is_file() or path.suffix != ".onnx":
        raise EdgekdError("expected an existing .onnx file or a run directory", where=str(path),
                          fix="profile the ONNX files under runs/<name>/artifacts/, or pass runs/<name>")
    try:
        m = onnx.load(str(path), load_external_data=False)  # the shape is in the graph; weights may be GBs
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds for a damaged file
        raise EdgekdError(f"cannot read ONNX model: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                          where=str(path), fix="export the model again (torch.onnx.export)") from None
    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    if not inputs:
        raise EdgekdError("the ONNX model has no inputs", where=str(path), fix="profile a model that takes an image")
    t = inputs[0].type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(t.elem_type) if t.elem_type else "not a tensor"
        raise EdgekdError(f"input '{inputs[0].name}' is {kind}; edgekd profiles float32 image models",
                          where=str(path), fix="export the model with a float32 input")
    dims = [d.dim_value or 1 for d in t.shape.dim]
    n = int(np.prod(dims[1:], dtype=object)) if len(dims) > 1 else 1
    if n > MAX_PROFILE_SAMPLE:
        raise EdgekdError(f"input '{inputs[0].name}' has {n:,} values per sample (shape {dims})", where=str(path),
                          fix=f"edgekd profiles models of up to {MAX_PROFILE_SAMPLE:,} input values per sample")
    return np.random.default_rng(0).standard_normal((1, *dims[1:])).astype(np.float32)


def _profile_onnx(path: Path, args: argparse.Namespace) -> int:
    from edgekd.profile import profile_ort

    x = _onnx_input(path)
    rows = []
    for bs in args.batch:
        try:
            r = profile_ort(path, path.stem, x, batch_size=bs, runs=args.runs if bs == 1 else max(10, args.runs // 20),
                            warmup=args.warmup, threads=args.threads)
        except EdgekdError:
            raise
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own errors name the node
            raise EdgekdError(f"ONNX Runtime cannot run the model at batch {bs}: {str(exc).splitlines()[0][:300]}",
                              where=str(path), fix="check the model with onnx.checker / onnxruntime") from None
        rows.append(r.to_dict())
        print(f"{path.name} onnxruntime batch {bs}: p50 {r.p50_us:,.1f} µs  p90 {r.p90_us:,.1f}  "
              f"p99 {r.p99_us:,.1f}  ({r.throughput_per_s:,.0f}/s, {r.runs} runs, {r.threads} thread(s), measured)")
    if args.json:
        from edgekd.runs.atomic import write_json

        write_json(Path(args.json), rows)
    return 0


def _read_report(root: Path) -> dict:
    from edgekd.runs.guard import read_json_mapping

    return read_json_mapping(root / "report.json", missing="no report.json in this folder",
                             damaged="report.json is damaged",
                             fix="give a run directory written by `edgekd run` (runs/<name>); a damaged report "
                                 "is written again by rerunning with --resume")


def _profile_run_dir(root: Path, target: str | None) -> int:
    """Per student: accuracy, latency (labelled), II, resources and share of the part."""
    rep = _read_report(root)
    acc = {r["name"]: r for r in rep.get("accuracy", [])}
    if target in ("fpga-hls", "fpga-rtl"):
        rows = [f for f in rep.get("fpga", []) if f["target"] == target]
        if not rows:
            raise EdgekdError(f"the run has no {target} results", where=str(root),
                              fix="enable export.hls / export.rtl (RTL needs a quantized *-q student) and rerun")
        print(f"{'model':<14} {'acc %':>7} {'method':<10} {'latency':>22} {'II':>7} {'LUT':>11} {'FF':>9} "
              f"{'DSP':>6} {'%LUT':>6} {'%DSP':>6}  first pixel→decision")
        for f in rows:
            a = acc.get(f["model"])
            iv = f.get("intervals") or {}
            lat = ("refused (too large)" if f["details"].get("refused")
                   else f"{f['latency_cycles']:,} cyc = {f['latency_us']:.3g} µs"
                   + (" [{:.3g}–{:.3g}]".format(*iv["latency_us"]) if "latency_us" in iv else ""))
            fp = f["first_pixel_to_decision_us"]
            print(f"{f['model']:<14} {100 * a['acc_mean'] if a else float('nan'):>7.2f} {f['method']:<10} {lat:>22} "
                  f"{f['ii_cycles']:>7,} {f['resources']['lut']:>11,} {f['resources']['ff']:>9,} "
                  f"{f['resources']['dsp']:>6,} {f['percent'].get('lut', 0):>6.1f} {f['percent'].get('dsp', 0):>6.1f}"
                  f"  {'–' if fp is None else f'{fp:.2f} µs'}"
                  + (" [{:.2f}–{:.2f}]".format(*iv["first_pixel_to_decision_us"])
                     if "first_pixel_to_decision_us" in iv else ""))
            if iv:
                print(f"{'':<14} 80 % intervals: II {iv['ii_cycles'][0]:,.0f}–{iv['ii_cycles'][1]:,.0f}, "
                      f"LUT {iv['lut'][0]:,.0f}–{iv['lut'][1]:,.0f}, DSP {iv['dsp'][0]:,.0f}–{iv['dsp'][1]:,.0f}; "
                      f"fits the part (upper end): {'yes' if f['details'].get('fits_part') else 'NO'}")
        return 0
    rows = [r for r in rep.get("latency", []) if target is None or r["target"] == target]
    if not rows:
        raise EdgekdError(f"the run has no latency figures for target {target}", where=str(root))
    print(f"{'model':<14} {'target':<12} {'method':<10} {'batch':>5} {'p50 µs':>12} {'p99 µs':>12}")
    for r in rows:
        print(f"{r['model']:<14} {r['target']:<12} {r['method']:<10} {r['batch_size']:>5} {r['p50_us']:>12,.1f} "
              f"{r['p99_us']:>12,.1f}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    root = Path(args.run)
    md = root / "report.md"
    if not md.is_file():
        raise EdgekdError("no report.md in this folder", where=str(root),
                          fix="give a run directory written by `edgekd run` (runs/<name>)")
    print(md.read_text())
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from edgekd.distill.losses import LOSSES
    from edgekd.hwtargets import available_fpgas
    from edgekd.nets import NETS

    print("architectures:")
    for n, spec in sorted(NETS.items()):
        print(f"  {n:<14} [{spec.role}] {spec.description}  params: {spec.param_names()}")
    print("loss methods:")
    for n, cls in sorted(LOSSES.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"  {n:<14} {'(teacher) ' if cls.needs_teacher else ''}{doc}  params: {cls.param_names()}")
    print("FPGA targets (hw/fpga):")
    for n in available_fpgas():
        print(f"  {n}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from edgekd import __version__

    p = argparse.ArgumentParser(
        prog="edgekd", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Distill a teacher into tiny students, export them (ONNX, hls4ml FPGA firmware), "
                    "check every export against its model, profile latency per target, write a report.",
    )
    p.add_argument("--version", action="version", version=f"edgekd {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run a recipe end to end: data → teacher → students → export → profile → report",
                       description="Run every stage of a recipe into runs/<name>/ (manifest, checkpoints, "
                                   "artifacts with fidelity records, report.md/json, plots). Exits 3 if an "
                                   "exported artifact fails its fidelity check, 2 on a user error.")
    r.add_argument("recipe", nargs="?", help="recipe YAML (default: the built-in models/cellsort.yaml)")
    r.add_argument("--out", help="run directory (default: runs/<recipe name>[-quick])")
    r.add_argument("--quick", action="store_true", help="small data, few epochs, one seed (<3 min on 2 cores)")
    r.add_argument("--resume", action="store_true", help="continue an existing run directory from its checkpoints")
    r.add_argument("--overwrite", action="store_true", help="delete an existing run directory first")
    r.add_argument("--threads", type=_positive_int, default=None, help="torch threads for training (default: all cores)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="validate a recipe and print it resolved",
                       description="Load and validate a recipe (schema, paths, registries) without running it.")
    v.add_argument("recipe", nargs="?", help="recipe YAML (default: built-in cellsort)")
    v.set_defaults(func=_cmd_validate)

    pr = sub.add_parser("profile", help="time an ONNX file, or show a run's latency per target",
                        description="With an .onnx file: time it with ONNX Runtime (warm-up, then per-call wall "
                                    "times; p50/p90/p99, 'measured'). With a run directory: show its figures for "
                                    "--target (fpga-hls: estimated, fpga-rtl: simulated, cpu-torch/onnxruntime: "
                                    "measured) with accuracy, II, resources and share of the part.")
    pr.add_argument("model", help="a model file (.onnx, TorchScript, .pt2, or a state dict with --arch) or a run "
                                  "directory (runs/<name>)")
    pr.add_argument("--input-shape", help="C×H×W of a model file that does not declare it, e.g. 1x48x48")
    pr.add_argument("--arch", help="a state dict's architecture (a built-in, torchvision:NAME, file.py:Factory)")
    pr.add_argument("--target", choices=["cpu-torch", "onnxruntime", "cuda", "tensorrt", "fpga-hls", "fpga-rtl"],
                    help="with a run directory: which target to show (default: all latency rows)")
    pr.add_argument("--batch", type=_positive_int, nargs="+", default=[1, 256], help="batch sizes (default: 1 256)")
    pr.add_argument("--runs", type=_positive_int, default=1000, help="timed calls at batch 1 (default 1000)")
    pr.add_argument("--warmup", type=_non_negative_int, default=50, help="untimed calls first (default 50)")
    pr.add_argument("--threads", type=_positive_int, default=1, help="intra-op threads (default 1)")
    pr.add_argument("--json", help="also write the records to this JSON file")
    pr.add_argument("--reports", metavar="DIR", help="with --target fpga-hls: your Vivado/Vitis csynth reports "
                    "(DIR/<model>/…) shown next to the estimate")
    pr.add_argument("--append-calibration", action="store_true",
                    help="with --reports: add each report to your FPGA calibration file (used by later estimates)")
    pr.set_defaults(func=_cmd_profile)

    ex = sub.add_parser("export", help="export a model file or a run's students to one target, checked",
                        description="Export a model file (state dict with --arch, TorchScript, .pt2, ONNX) or the "
                                    "students of a finished run directory (re-exported with new target settings, "
                                    "no retraining) to --target, and check the artifact on real inputs (--calib) "
                                    "or, without them, on random inputs (said in the fidelity record). "
                                    "Exits 3 if the check fails.")
    ex.add_argument("model", help="model file, or a run directory (runs/<name>)")
    ex.add_argument("--target", required=True, choices=["onnxruntime", "fpga-hls", "fpga-rtl", "tensorrt",
                                                        "cuda-fused"])
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--input-shape", help="C×H×W, e.g. 1x48x48 (needed when the file does not declare it)")
    ex.add_argument("--calib", help="an .npz holding x: preprocessed real inputs N×C×H×W to check the export on")
    ex.add_argument("--arch", help="a state dict's architecture (a built-in, torchvision:NAME, file.py:Factory)")
    ex.add_argument("--num-classes", type=_positive_int, help="a state dict's number of classes")
    ex.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                    help="target settings, as in the recipe's export section (e.g. io_type=io_parallel)")
    ex.set_defaults(func=_cmd_export)

    di = sub.add_parser("distill", help="train the teacher and distil the students of a recipe (no export)",
                        description="The training half of `edgekd run`: data → teacher → cache → students → "
                                    "report; export later with `edgekd export RUN_DIR --target ...`.")
    di.add_argument("recipe", nargs="?", help="recipe YAML (default: the built-in models/cellsort.yaml)")
    di.add_argument("--out", help="run directory (default: runs/<recipe>-distill)")
    di.add_argument("--quick", action="store_true")
    di.add_argument("--resume", action="store_true")
    di.add_argument("--overwrite", action="store_true")
    di.add_argument("--no-progress", action="store_true")
    di.set_defaults(func=_cmd_distill)

    se = sub.add_parser("search", help="search students under a budget (Pareto front, best exported)",
                        description="Sample the recipe's search: space with Optuna, price each candidate on the "
                                    "target (estimated/simulated/measured), distil it on the cached teacher, stop weak "
                                    "trials early; write the Pareto front (search.md, search.json, front.png) and "
                                    "export the best student under the budget through the target, checked.")
    se.add_argument("recipe", help="recipe YAML with a search: section")
    se.add_argument("--target", required=True, help="fpga-hls | fpga-rtl | onnxruntime | cpu-torch")
    se.add_argument("--budget", default="", help="e.g. latency_us=2,lut=0.8,dsp=50%% (FPGA: latency is first pixel "
                    "to decision; lut/ff/dsp/bram are fractions of the part; CPU: latency_us, params; any: accuracy)")
    se.add_argument("--budget-on", choices=["upper", "point"], default="upper",
                    help="judge estimated figures on the upper end of their 80 %% interval (default) or on the "
                         "estimate itself")
    se.add_argument("--trials", type=_positive_int, help="trials in all (default: search.trials)")
    se.add_argument("--workers", type=_positive_int, default=1, help="concurrent trials on Ray Tune (default 1: no Ray)")
    se.add_argument("--address", help="a Ray cluster's address (the output folder must be on a shared file system)")
    se.add_argument("--out", help="search folder (default: runs/<recipe>-search-<target>)")
    se.add_argument("--quick", action="store_true", help="the recipe's quick data sizes and teacher epochs")
    se.add_argument("--resume", action="store_true", help="continue a stopped search in --out")
    se.add_argument("--overwrite", action="store_true")
    se.add_argument("--no-export", action="store_true", help="do not export the chosen student")
    se.add_argument("--no-progress", action="store_true")
    se.set_defaults(func=_cmd_search)

    rp = sub.add_parser("report", help="print the report of a run directory",
                        description="Print runs/<name>/report.md.")
    rp.add_argument("run", help="run directory")
    rp.set_defaults(func=_cmd_report)

    ls = sub.add_parser("list", help="list architectures, loss methods and hardware targets")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    previous = signal.signal(signal.SIGTERM, _terminated)
    # an explicit SIGINT stops a run even where it was started with SIGINT ignored (a background job of a
    # non-interactive shell, nohup ... &): `kill -INT` then behaves as Ctrl-C does in a terminal
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.func(args) or 0)
    except EdgekdError as exc:
        print(f"edgekd: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("edgekd: terminated (SIGTERM); rerun with --resume to continue from the last checkpoint",
              file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("edgekd: interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgekd list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        print(f"edgekd: error: {exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror}\n"
              f"  -> {USER_OS_ERRORS[exc.errno]}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` runs (background builds stop, locks free)."""


def _terminated(signum, frame) -> None:
    raise Terminated()


#: operating-system errors that are the user's to fix, with what to do
USER_OS_ERRORS = {
    errno.ENOSPC: "free disk space (or choose --out on another disk), then rerun with --resume",
    errno.EDQUOT: "free disk space within your quota, then rerun with --resume",
    errno.EROFS: "the folder is on a read-only file system: choose --out on a writable disk",
    errno.EACCES: "you may not write there: choose another --out or fix the folder's permissions",
    errno.EPERM: "you may not write there: choose another --out or fix the folder's permissions",
    errno.ENOTDIR: "a path component is a file, not a folder: choose another path",
    errno.EISDIR: "a folder is where a file was expected: choose another path",
}


if __name__ == "__main__":
    sys.exit(main())
