"""Add each weighted layer's ``weight_csd`` to the calibration corpus, from the weights committed with its report.

hls4ml writes a project's weights next to its firmware (``firmware/weights/w2.h``…); quantized to the layer's
weight type, each nonzero weight's canonical-signed-digit count says whether the tool multiplies by it in a DSP or
with a few shift-adds in fabric. For every record whose repository is mirrored here (``fetch`` puts it under
``/work/.mirror``), this reads the weight arrays at the report's commit and writes, on the record's matching layers
(same name and kind), ``weight_csd`` = nonzero weights with [1, 2, 3, ≥ 4] CSD digits. Numbers only.

    python tools/fpga_corpus_weight_csd.py [--mirror /work/.mirror] [--only SOURCE_ID]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOURCE = re.compile(r"([^@]+)@([0-9a-f]{7,40}):(.*)$")
PROJECT = re.compile(r"(^|.*/)(\w+)_prj/solution1/syn/report/")


def git_dir(mirror: Path, repo: str) -> Path | None:
    for root in sorted(mirror.glob(repo.replace("/", "+") + "*")):
        heads = sorted(root.glob("**/HEAD"), key=lambda h: len(h.parts))
        if heads:
            return heads[0].parent
    return None


def show(gd: Path, commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(gd), "show", f"{commit}:{path}"], capture_output=True, text=True,
                          check=False).stdout


def layer_digits(gd: Path, commit: str, report: str) -> dict[tuple[str, str], tuple[int, ...]]:
    """(layer name, kind) → weight_csd for the project the report belongs to."""
    from edgekd.profile.hls_project import parse_parameters

    m = PROJECT.match(report)
    prj, top = (m.group(1), m.group(2)) if m else ("", "myproject")
    for fw in (f"{prj}firmware/", f"{prj}src/"):
        params = show(gd, commit, fw + "parameters.h")
        if params:
            break
    else:
        return {}
    cpp = show(gd, commit, f"{fw}{top}.cpp")
    try:
        layers, _ = parse_parameters(params, show(gd, commit, fw + "defines.h"), cpp,
                                     lambda name: show(gd, commit, f"{fw}weights/{name}.h"))
    except (ValueError, KeyError, TypeError):
        return {}
    return {(l.name, l.kind): l.weight_csd for l in layers if l.weight_csd is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    ap.add_argument("--corpus", type=Path, default=ROOT / "hw" / "fpga" / "reports")
    ap.add_argument("--only", help="one source file's id (e.g. Hector-Plata_hls4ml-tutorial)")
    args = ap.parse_args(argv)
    for f in sorted(args.corpus.glob("*.json")):
        if args.only and f.stem != args.only:
            continue
        text = f.read_text()
        d = json.loads(text)
        ascii_ = "\\u" in text or not any(ord(c) > 127 for c in text)
        n = 0
        for rec in d.get("records", []):
            m = SOURCE.match(rec.get("source", ""))
            gd = git_dir(args.mirror, m.group(1)) if m else None
            if gd is None:
                continue
            digits = layer_digits(gd, m.group(2), m.group(3))
            for layer in rec["layers"]:
                hit = digits.get((layer.get("name"), layer["kind"]))
                if hit is not None:
                    layer["weight_csd"] = list(hit)
                    n += 1
        if n:
            f.write_text(json.dumps(d, indent=1, ensure_ascii=ascii_) + "\n")
        print(f"{f.stem}: weight_csd on {n} layers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
