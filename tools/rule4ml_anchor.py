"""rule4ml's predictions on the FPGA calibration corpus, stored as data: hw/fpga/anchors/rule4ml.json.

rule4ml (https://pypi.org/project/rule4ml/) is *not* a dependency of edgekd: it pulls TensorFlow, Keras 3,
torch and torch-geometric. Run this script in a venv of its own; ``tools/bench_fpga_calibration.py`` then
reads the JSON it writes and puts rule4ml's error next to edgekd's held-out error on the same records.

    python3 -m venv /work/venv-r4 && /work/venv-r4/bin/pip install rule4ml==0.2.0
    OMP_NUM_THREADS=1 /work/venv-r4/bin/python tools/rule4ml_anchor.py

The predictor is rule4ml's default (``MultiModelWrapper.load_default_models``: the v2 GNN estimators for
BRAM, DSP, FF, LUT, CYCLES and INTERVAL, whose weights ship in the wheel; nothing is downloaded). Each
corpus record is rebuilt as the equivalent Keras model from its layer list and given rule4ml's inputs:

* board — rule4ml knows four: pynq-z2 (xc7z020), zcu102 (xczu9eg), alveo-u200 (xcu200), alveo-u250
  (xcu250). A record's part maps to one when it is that part, or the same die (xcvu9p → alveo-u200,
  xcvu13p → alveo-u250; ``board_match`` says which); any other part is skipped.
* strategy Latency / Resource, the model's reuse factor and the per-layer reuse factors (rule4ml rounds them
  to the closest valid one, as hls4ml does), the default precision's total width (rule4ml reads only
  ``ap_fixed<W, I>``; W is what its estimators use).
* vivado_version = the record's tool version when rule4ml was trained on it (2019.1 … 2024.2), else skipped;
  hls4ml_version: the record's own mapped to rule4ml's two (< 1.0 → 0.8.1, ≥ 1.0 or main → 1.1.0); where the
  record does not say, the mean of the predictions for both.

Skipped, counted by reason: io_stream designs (rule4ml's README: its estimators are constrained to
io_parallel and a 10 ns clock), layers outside rule4ml's set (ZeroPadding, global pooling, depthwise
convolutions, ELU / LeakyReLU / PReLU / hard_tanh activations, concatenation, ...). A 10 ns clock is *not*
required (most of the corpus is at 5 ns); each prediction carries the record's clock so the bench can say so.
Nothing is tuned to the reported numbers: the mapping above was fixed before any prediction was compared.

Units: rule4ml's BRAM is in 18K blocks (its board table gives the Zynq-7020 280 = 140 × 36K), as the corpus's
``bram_18k``; LUT, FF, DSP are counts; CYCLES and INTERVAL are clock cycles (its training targets are the
mean of the report's min and max).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = ROOT / "hw" / "fpga" / "reports"
OUT = ROOT / "hw" / "fpga" / "anchors" / "rule4ml.json"

EXACT = {"xc7z020": "pynq-z2", "xczu9eg": "zcu102", "xcu200": "alveo-u200", "xcu250": "alveo-u250"}
SAME_DIE = {"xcvu9p": "alveo-u200", "xcvu13p": "alveo-u250"}
ACTS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "softmax": "softmax", "linear": "linear"}


class Skip(Exception):
    pass


def load_records() -> list[dict]:
    """The corpus's usable records (edgekd's loader when it imports here, else the JSON files as it reads them)."""
    try:
        sys.path.insert(0, str(ROOT))
        from edgekd.profile.fpga_corpus import load_corpus

        return [r.to_dict() | {"excluded": r.excluded} for r in load_corpus(CORPUS_DIR, user=False)]
    except Exception as exc:  # noqa: BLE001 - fall back to the files
        print(f"edgekd loader not usable here ({exc}); reading the JSON files", file=sys.stderr)
    out = []
    for f in sorted(CORPUS_DIR.glob("*.json")):
        for rec in json.loads(f.read_text()).get("records", []):
            out.append(rec | {"excluded": rec.get("exclude")})
    return out


def board_of(part: str) -> tuple[str, str]:
    p = (part or "").lower()
    for k, b in EXACT.items():
        if p.startswith(k):
            return b, "exact"
    for k, b in SAME_DIE.items():
        if p.startswith(k):
            return b, "same die"
    raise Skip(f"part not one of rule4ml's boards ({re.split(r'[-_]', p)[0] or 'none'})")


def precision_of(h: dict) -> str:
    p = h.get("precision")
    if isinstance(p, dict):
        p = p.get("default")
    if not p:
        raise Skip("no precision recorded")
    m = re.search(r"fixed<\s*(\d+)\s*,\s*(\d+)?", str(p))
    if not m:
        raise Skip("precision not ap_fixed")
    w = int(m.group(1))
    i = int(m.group(2)) if m.group(2) else min(6, w)  # integer bits: not an input of rule4ml's estimators
    return f"ap_fixed<{w}, {i}>"


def hls4ml_versions(h: dict) -> list[str]:
    v = str(h.get("version") or "").strip().lower()
    if v.startswith("main"):
        return ["1.1.0"]
    m = re.match(r"(\d+)\.(\d+)", v)
    if m:
        return ["1.1.0"] if int(m.group(1)) >= 1 else ["0.8.1"]
    return ["0.8.1", "1.1.0"]


def keras_model(rec: dict):
    """The record's layer list as a Keras functional model, with the layer names of the record."""
    import keras

    L = keras.layers
    layers = rec["layers"]
    x = inp = L.Input(shape=tuple(layers[0]["in_shape"]))
    names = Counter()

    def name(l):
        n = re.sub(r"[^A-Za-z0-9_]", "_", l.get("name") or l["kind"])
        names[n] += 1
        return n if names[n] == 1 else f"{n}_{names[n]}"

    layer_names = []
    for l in layers:
        kind, ins, outs = l["kind"], tuple(l["in_shape"]), tuple(l["out_shape"])
        cur = tuple(x.shape[1:])
        if cur != ins:
            import math

            if len(ins) == 1 and math.prod(cur) == ins[0]:
                x = L.Flatten()(x)
            else:
                raise Skip("layer shapes do not chain")
        nm = name(l)
        if kind == "dense":
            x = L.Dense(outs[-1], name=nm)(x)
        elif kind in ("act", "softmax"):
            a = str(l.get("activation") or ("softmax" if kind == "softmax" else "")).lower()
            a = re.sub(r"^quantized_(\w+).*", r"\1", a)
            if a not in ACTS:
                raise Skip(f"activation not in rule4ml's set ({a or 'unnamed'})")
            if a == "linear":
                continue
            x = L.Activation(ACTS[a], name=nm)(x)
        elif kind in ("conv1d", "conv2d"):
            if l.get("implementation") == "depthwise" or "depthwise" in (l.get("name") or ""):
                raise Skip("layer not in rule4ml's set (depthwise conv)")
            pad = "same" if l.get("padding") else "valid"
            cls = L.Conv1D if kind == "conv1d" else L.Conv2D
            x = cls(outs[-1], l.get("kernel", 1), strides=l.get("stride", 1), padding=pad, name=nm)(x)
        elif kind == "pool":
            if "global" in (l.get("name") or "") or (len(outs) == len(ins) and outs[:-1] == (1,) * (len(outs) - 1)
                                                     and ins[:-1] != outs[:-1] and l.get("kernel", 1) == 1):
                raise Skip("layer not in rule4ml's set (global pooling)")
            op = "Max" if str(l.get("pool_op", "Max")).lower().startswith("max") else "Average"
            pad = "same" if l.get("padding") else "valid"
            cls = getattr(L, f"{op}Pooling{len(ins) - 1}D")
            x = cls(l.get("kernel", 2), strides=l.get("stride"), padding=pad, name=nm)(x)
        elif kind == "flatten":
            x = L.Flatten(name=nm)(x)
        elif kind == "other" and (re.match(r"(batch_normalization|bn)", l.get("name") or "")
                                  or l.get("activation") == "batchnorm_config"):
            # hls4ml's ApplyAlpha (QKeras alpha scaling, '<dense>_alpha') is a BatchNormalization layer
            x = L.BatchNormalization(name=nm)(x)
        elif kind == "pad":
            raise Skip("layer not in rule4ml's set (zero padding)")
        else:
            raise Skip(f"layer not in rule4ml's set ({kind}: {re.sub(r'_?[0-9]+$', '', l.get('name') or '')})")
        if tuple(x.shape[1:]) != outs:
            raise Skip("rebuilt layer shapes differ from the record's")
        layer_names.append((nm, l))
    model = keras.Model(inp, x, name=re.sub(r"[^A-Za-z0-9_]", "_", rec["id"])[:60])
    model.build((None, *layers[0]["in_shape"]))
    return model, layer_names


def hls_config(rec: dict, board: str, layer_names) -> dict:
    h = rec["hls4ml"]
    strat = h.get("strategy")
    if strat not in ("Latency", "Resource"):
        raise Skip(f"strategy not in rule4ml's set ({strat})")
    rf = int(h.get("reuse_factor") or 1)
    cfg = {"board": board, "model": {"strategy": strat.lower(), "precision": precision_of(h), "reuse_factor": rf}}
    per = {nm: {"reuse_factor": int(l["reuse_factor"])} for nm, l in layer_names
           if l.get("reuse_factor") and int(l["reuse_factor"]) != rf}
    if per:
        cfg["layer_name"] = per
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--limit", type=int, default=0, help="first N records only (a smoke test)")
    args = ap.parse_args(argv)

    # torch (and triton, which torch-geometric imports) before TensorFlow: the other order segfaults while
    # triton's native module loads (TensorFlow 2.21 + torch 2.14 wheels, CPU only)
    import importlib

    import torch

    importlib.import_module("torch_geometric")

    torch.set_num_threads(1)
    import numpy as np
    import rule4ml
    from rule4ml.models.wrappers import MultiModelWrapper

    est = MultiModelWrapper()
    est.load_default_models()
    vivado_known = set(next(iter(est._models.values())).global_categorical_maps["vivado_version"])

    recs = load_records()
    if args.limit:
        recs = recs[: args.limit]
    skipped: Counter = Counter()
    preds: dict[str, dict] = {}
    for rec in recs:
        if rec.get("excluded"):
            skipped["excluded in the corpus"] += 1
            continue
        try:
            if rec["hls4ml"].get("io_type") != "io_parallel":
                raise Skip("io_stream (rule4ml's estimators: io_parallel only)")
            board, match = board_of(rec.get("part", ""))
            tv = str(rec.get("tool_version"))
            if tv not in vivado_known:
                raise Skip("tool version outside rule4ml's training set (2019.1–2024.2)")
            model, layer_names = keras_model(rec)
            cfg = hls_config(rec, board, layer_names)
            vers = hls4ml_versions(rec["hls4ml"])
            df = est.predict(model, hls_configs=cfg, hls4ml_versions=vers, vivado_versions=[tv], round_digits=6)
        except Skip as s:
            skipped[str(s)] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - a record rule4ml's parser cannot take
            kinds = sorted({l["kind"] for l in rec["layers"]})
            skipped[f"rule4ml's Keras parser failed ({type(exc).__name__}; layer kinds {'/'.join(kinds)})"] += 1
            print(f"{rec['id']}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        row = {k: float(np.mean(df[c].astype(float))) for k, c in
               (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP"), ("bram_18k", "BRAM"), ("latency_cycles", "CYCLES"),
                ("interval_cycles", "INTERVAL")) if c in df}
        preds[rec["id"]] = {**{k: round(v, 2) for k, v in row.items()}, "board": board, "board_match": match,
                            "hls4ml_version": vers if len(vers) > 1 else vers[0], "vivado_version": tv,
                            "precision": cfg["model"]["precision"], "strategy": cfg["model"]["strategy"],
                            "reuse_factor": cfg["model"]["reuse_factor"], "clock_ns": rec.get("clock_ns")}
        print(f"{rec['id'][:70]:70s} {board:10s} LUT {row.get('lut', 0):9.0f} (rep {rec['reported'].get('lut')}) "
              f"cycles {row.get('latency_cycles', 0):6.1f} (rep {rec['reported'].get('latency_max')})", flush=True)
    out = {
        "tool": "rule4ml",
        "version": getattr(rule4ml, "__version__", "0.2.0"),
        "model": "v2 gnn (MultiModelWrapper.load_default_models: TorchGNN estimators for BRAM, DSP, FF, LUT, "
                 "CYCLES, INTERVAL; weights from the wheel)",
        "generated": _dt.date.today().isoformat(),
        "units": {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram_18k": "18K BRAM blocks (rule4ml's BRAM, same unit)",
                  "latency_cycles": "clock cycles (rule4ml CYCLES)", "interval_cycles": "clock cycles (rule4ml INTERVAL)"},
        "mapping": {"board_exact": EXACT, "board_same_die": SAME_DIE,
                    "hls4ml_version": "record's < 1.0 → 0.8.1, ≥ 1.0 or main → 1.1.0, unknown → mean over both",
                    "vivado_version": "record's tool_version (Vivado or Vitis HLS), skipped outside 2019.1–2024.2",
                    "precision": "default precision's total width as ap_fixed<W, I> (I = 6 where unstated; "
                                 "rule4ml's estimators read W only)"},
        "caveats": "rule4ml's estimators were trained on its own synthesis data set (wa-hls4ml: hls4ml designs "
                   "synthesised at a 10 ns clock, io_parallel), which may overlap designs like the corpus's "
                   "hls4ml tutorial models; its error here is not held out in edgekd's leave-one-source-out sense.",
        "predictions": preds,
        "skipped": dict(sorted(skipped.items(), key=lambda kv: -kv[1])),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(preds)} predicted, skipped: {dict(skipped)} → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
