"""Benchmark: QAT students fine-tuned from the float KD++ student vs that float student (issue 15).

For each seed, one `edgekd distill` run of the built-in recipe's data and teacher with three
students: the float KD++ student (`cnn-kdpp`), and its 8-bit and 4-bit quantization-aware
twins started from it (`init: cnn-kdpp`: weights and biases copied, activation scales
calibrated, 14 epochs of KD++ at lr 1e-3). Seeds run as parallel processes (one thread each), resumable.
Writes the `<!-- qat-finetune -->` section of BENCHMARKS.md: test accuracy mean ± std over
seeds, the paired per-seed gap to float, and the goals (8-bit within 0.5 point with
std ≤ 1; 4-bit within 1.5 points).

    python tools/bench_qat_finetune.py --work /tmp/qat-ft              # 3 seeds, ~25 min on 2 cores
    python tools/bench_qat_finetune.py --work /tmp/qat-ft --runs A B C # summarise finished runs
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECTION = "qat-finetune"
FLOAT, Q8, Q4 = "cnn-kdpp", "cnn-q8-kd", "cnn-q4-kd"
ALIASES = {"cnn-q8-ft": Q8, "cnn-q4-ft": Q4}  # names of the first measurement's runs


def recipe_for(seed: int, teacher_runs: Path | None = None) -> dict:
    r = yaml.safe_load((ROOT / "models" / "cellsort.yaml").read_text())
    if teacher_runs is not None:  # the same recipe's teacher, already trained for this seed: loaded, not retrained
        r["teacher"]["checkpoint"] = str((teacher_runs / f"seed{seed}" / "checkpoints" / f"teacher-seed{seed}.pt")
                                         .resolve())
    by = {s["name"]: s for s in r["students"]}
    q8 = dict(by[Q8])
    q4 = {**q8, "name": Q4, "params": {**q8["params"], "weight_bits": 4, "act_bits": 4}}
    r["students"] = [by[FLOAT], q8, q4]
    r["seeds"] = [seed]
    r.pop("search", None)
    return r


def run_seeds(work: Path, seeds: list[int], teacher_runs: Path | None = None) -> list[Path]:
    work.mkdir(parents=True, exist_ok=True)
    procs, dirs = [], []
    for seed in seeds:
        out = work / f"seed{seed}"
        dirs.append(out)
        if (out / "report.json").is_file():
            continue
        rp = work / f"recipe-seed{seed}.yaml"
        rp.write_text(yaml.safe_dump(recipe_for(seed, teacher_runs), sort_keys=False))
        cmd = [sys.executable, "-m", "edgekd", "distill", str(rp), "--out", str(out), "--no-progress",
               "--resume" if out.exists() else "--overwrite"]
        procs.append(subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                      stdout=open(work / f"seed{seed}.log", "w"), stderr=subprocess.STDOUT))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a seed failed: see {work}/seed*.log")
    return dirs


def collect(dirs: list[Path]) -> dict[str, dict[int, float]]:
    acc: dict[str, dict[int, float]] = {}
    for d in dirs:
        rep = json.loads((d / "report.json").read_text())
        for m in rep["models"]:
            name = ALIASES.get(m["name"], m["name"])
            acc.setdefault(name, {})[int(m["seed"])] = float(m["test_acc"])
    return acc


def _bias_words() -> str:
    params = next(st for st in yaml.safe_load((ROOT / "models" / "cellsort.yaml").read_text())["students"]
                  if st["name"] == Q8)["params"]
    if params.get("bias") == "quantized":
        return "the float student's biases kept, rounded onto each layer's accumulator grid (`bias: quantized`)"
    return "no biases (the float student's dropped)"


def render(acc: dict[str, dict[int, float]], dirs: list[Path]) -> str:
    def ms(v: list[float]) -> str:
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return f"{100 * statistics.mean(v):.2f} ± {100 * sd:.2f} %"

    seeds = sorted(acc[FLOAT])
    rows = ["| student | test accuracy (mean ± std) | gap to float (paired, mean ± std) | per seed | goal | met |",
            "|---|---|---|---|---|---|"]
    goals = {Q8: (0.5, 1.0), Q4: (1.5, None)}
    for name in (FLOAT, Q8, Q4):
        v = [acc[name][s] for s in seeds]
        per = ", ".join(f"{100 * x:.2f}" for x in v)
        if name == FLOAT:
            rows.append(f"| {name} (float KD++) | {ms(v)} | — | {per} | — | — |")
            continue
        gaps = [acc[FLOAT][s] - acc[name][s] for s in seeds]
        g_mean = statistics.mean(gaps)
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        lim, sd_lim = goals[name]
        met = g_mean <= lim / 100 and (sd_lim is None or sd <= sd_lim / 100)
        goal = f"gap ≤ {lim} pt" + (f", std ≤ {sd_lim} pt" if sd_lim else "")
        rows.append(f"| {name} | {ms(v)} | {100 * g_mean:+.2f} ± {100 * (statistics.stdev(gaps) if len(gaps) > 1 else 0):.2f} pt | "
                    f"{per} | {goal} | {'yes' if met else '**no**'} |")
    return ("## QAT students fine-tuned from the float student (`tools/bench_qat_finetune.py`)\n\n"
            f"Built-in recipe data (synthetic B vs T4, 4000/1000/2000, 15 % label noise), its teacher (resnet-mini, "
            f"12 epochs) per seed, seeds {seeds}. `{FLOAT}`: 20 epochs KD++ (0.1·CE + 0.9·τ²·KL, τ 4, + 2·ND). "
            f"`{Q8}` / `{Q4}`: `cellsort-cnn-q` (power-of-two fixed-point scales; {_bias_words()}: bit-exact "
            f"hls4ml/RTL firmware) started from the trained `{FLOAT}` of the same seed (`init:`; 3 layers copied, "
            "activation scales calibrated on 301 training batches), then 14 epochs KD++ at lr 1e-3 (cosine; chosen "
            "over 8 epochs at 5e-4 on seed 2's validation accuracy, 74.2 vs 73.1 %). "
            "Test accuracy of the last epoch; the gap is float − QAT per seed (positive: QAT behind). Before this, "
            "the 8-bit student trained from scratch reached 84.5 ± 2.5 % against 89.3 ± 0.8 % (issue 15); fine-tuned "
            "without biases (the float student's dropped, commit 1f4b3d1), 88.90 ± 1.15 % (8-bit, per seed 89.00, "
            "90.00, 87.70) and 87.83 ± 1.30 % (4-bit).\n\n"
            + "\n".join(rows) + "\n\n"
            f"Runs: {', '.join(d.name for d in dirs)}. Reproduce: `python tools/bench_qat_finetune.py --work DIR` "
            "(the seeds run as parallel processes, one thread each).\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", type=Path, nargs="+", help="finished run folders to summarise instead")
    ap.add_argument("--teacher-runs", type=Path, help="a folder with seed<N>/checkpoints/teacher-seed<N>.pt of this "
                    "recipe's teacher (an earlier --work): teachers are loaded instead of trained again")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    dirs = a.runs or run_seeds(a.work, a.seeds, a.teacher_runs)
    body = render(collect(dirs), dirs)
    print(body)
    if not a.no_write:
        from edgekd.report.benchmarks_md import write_section

        write_section(a.out, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
