"""Soak test of kill → resume: kill a `--quick` run at random moments, resume it, compare.

For each kill: a fresh run of the built-in recipe (`edgekd run --quick`) is started in a
folder whose path has a space, killed (SIGKILL, SIGTERM or SIGINT, in turn) at a random
moment inside one stage — teacher training, teacher cache, student training, ONNX export,
hls4ml export, RTL build, report — then resumed with `--resume`. Each resumed run must end
with status ok and the same results as one uninterrupted run: accuracies, fidelity
records, FPGA figures (timings excluded, they are measured anew). After each kill and
each resume no process that the killed run started may be left alive (found by an
environment tag every child inherits, zombies excluded).

    python tools/soak_resume.py --kills 7 --out /tmp/soak     # writes the BENCHMARKS.md `soak` section
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (stage, the run.log line after which the kill falls, extra random delay in seconds)
MOMENTS = [
    ("teacher training", "[data] {", 4.0),
    ("teacher cache", "[teacher] seed", 0.5),
    ("student training", "[cache]", 6.0),
    ("ONNX export", "[student] mlp-q8-kd", 0.3),
    ("hls4ml export", "→ ONNX", 2.0),
    ("RTL build + hls4ml", "→ hls4ml", 1.0),
    ("report", "[profile]", 0.2),
]
SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


def _start(out: Path, tag: str, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "EDGEKD_SOAK_TAG": tag, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "edgekd", "run", "--quick", "--out", str(out), "--no-progress"]
    return subprocess.Popen(args + (["--resume"] if resume else []), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def live_tagged(tag: str) -> list[str]:
    """Processes alive (not zombies) whose environment carries ``tag``."""
    found = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if f"EDGEKD_SOAK_TAG={tag}".encode() not in (d / "environ").read_bytes():
                continue
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(f"{d.name} {(d / 'comm').read_text().strip() if (d / 'comm').exists() else ''}")
    return found


def _wait_orphans(tag: str, timeout: float = 15.0) -> list[str]:
    deadline = time.time() + timeout
    while (left := live_tagged(tag)) and time.time() < deadline:
        time.sleep(0.1)
    return left


def results(run: Path) -> dict:
    """What must not change between an uninterrupted and a resumed run (no timings)."""
    rep = json.loads((run / "report.json").read_text())
    fid = {f"{a['model']}:{a['target']}:{a['format']}": {k: (a.get("fidelity") or {}).get(k) for k in
                                                         ("max_abs_diff", "argmax_agreement", "exact_match_rate",
                                                          "n_inputs", "passed")}
           for a in rep.get("artifacts", [])}
    fpga = {f"{f['model']}:{f['target']}": (f["latency_cycles"], f["ii_cycles"], f["resources"]) for f in
            rep.get("fpga", [])}
    acc = {f"{m['name']}:{m['seed']}": m["test_acc"] for m in rep["models"]}
    return {"status": rep.get("status"), "accuracy": acc, "fidelity": fid, "fpga": fpga}


def _kill_at(out: Path, tag: str, marker: str, delay: float, sig: int, rng: random.Random) -> tuple[str, float]:
    """Start a run, wait for ``marker`` in its log, wait a random part of ``delay``, send ``sig``."""
    p = _start(out, tag, resume=False)
    log = out / "run.log"
    t0 = time.time()
    while p.poll() is None:
        if log.is_file() and marker in log.read_text(errors="replace"):
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(0, delay))
    if p.poll() is not None:
        return "finished before the kill", time.time() - t0
    os.kill(p.pid, sig)
    try:
        p.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # did not stop: a defect; SIGKILL it and say so in the table
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return f"did not stop within 120 s of {signal.Signals(sig).name}", time.time() - t0
    return f"exit {p.returncode}", time.time() - t0


def soak(kills: int, out: Path, seed: int) -> dict:
    rng = random.Random(seed)
    base = out / "soak runs"  # a space in every path: make and hls4ml must cope
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    t = time.time()
    ref = base / "reference"
    p = _start(ref, "ref-" + uuid.uuid4().hex, resume=False)
    text, _ = p.communicate(timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed:\n{text[-3000:]}")
    ref_res, ref_s = results(ref), time.time() - t
    rows = []
    for i in range(kills):
        stage, marker, delay = MOMENTS[i % len(MOMENTS)]
        sig = SIGNALS[i % len(SIGNALS)]
        tag = uuid.uuid4().hex
        run = base / f"kill {i}"
        how, at = _kill_at(run, tag, marker, delay, sig, rng)
        orphans_kill = _wait_orphans(tag)
        p = _start(run, tag, resume=True)
        text, _ = p.communicate(timeout=1800)
        res = results(run) if (run / "report.json").is_file() else None
        rows.append({"kill": i, "stage": stage, "signal": signal.Signals(sig).name, "killed_after_s": round(at, 1),
                     "killed": how, "resume_exit": p.returncode, "identical": res == ref_res,
                     "orphans_after_kill": orphans_kill, "orphans_after_resume": _wait_orphans(tag),
                     "tail": "" if p.returncode == 0 else text[-1500:]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "tail"}), flush=True)
        shutil.rmtree(run, ignore_errors=True)
    return {"kills": kills, "reference_s": round(ref_s, 1), "wall_s": round(time.time() - t, 1), "rows": rows,
            "reference": ref_res}


def markdown(s: dict) -> str:
    rows = s["rows"]
    ok = sum(r["resume_exit"] == 0 and r["identical"] for r in rows)
    orphans = sum(len(r["orphans_after_kill"]) + len(r["orphans_after_resume"]) for r in rows)
    killed = sum(r["killed"] != "finished before the kill" for r in rows)
    lines = [
        "## Kill → resume soak (`tools/soak_resume.py`)\n",
        f"`python tools/soak_resume.py --kills {s['kills']}`: the built-in recipe with `--quick`, in a folder whose path "
        "has a space, killed at a random moment inside a stage (SIGKILL, SIGTERM, SIGINT in turn), then resumed. "
        f"Uninterrupted reference run {s['reference_s']:.0f} s; whole soak {s['wall_s'] / 60:.1f} min on this machine.\n",
        f"**Kills {killed} (of {len(rows)} attempts), resumes ending ok with results identical to the uninterrupted run "
        f"{ok}/{len(rows)}, orphan processes left {orphans}.**\n",
        "| # | stage | signal | killed after | killed run | resume exit | identical results | orphans |",
        "|---:|---|---|---:|---|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['kill']} | {r['stage']} | {r['signal']} | {r['killed_after_s']} s | {r['killed']} | "
                     f"{r['resume_exit']} | {'yes' if r['identical'] else 'NO'} | "
                     f"{len(r['orphans_after_kill']) + len(r['orphans_after_resume'])} |")
    lines.append("\nIdentical means: status, every model's test accuracy per seed, every artifact's fidelity record "
                 "(max |Δ|, argmax agreement, exact-match rate, inputs, passed) and every FPGA figure (cycles, II, resources).")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgekd-soak"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    s = soak(args.kills, args.out, args.seed)
    (args.out / "soak.json").write_text(json.dumps(s, indent=2))
    md = markdown(s)
    print(md)
    if not args.no_write:
        from edgekd.report.benchmarks_md import write_section

        write_section(ROOT / "BENCHMARKS.md", "soak", md)
    bad = [r for r in s["rows"] if r["resume_exit"] != 0 or not r["identical"] or r["orphans_after_kill"]
           or r["orphans_after_resume"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
