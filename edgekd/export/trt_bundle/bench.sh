#!/usr/bin/env bash
# Time this bundle's TensorRT engine with trtexec and record the conditions of the run.
#
#   bash bench.sh                        # default precision, batch 1
#   bash bench.sh --precision fp16 --batch 64 --iterations 5000
#   bash bench.sh --no-clocks            # leave clocks as they are (e.g. without root)
#
# Records `nvpmodel -q` (power mode), runs `jetson_clocks` when allowed (root or password-less
# sudo; the previous clocks are restored on exit), then runs
#   trtexec --loadEngine=... --useCudaGraph --useSpinWait --noDataTransfers --exportTimes=...
# and writes everything to OUT (default: bench-<precision>-b<batch>-<time>/):
#   trtexec.log, times.json, nvpmodel.txt, clocks.txt, env.txt, bench.json
# Parse the results on the host with edgekd:
#   python -c "from edgekd.profile.trtexec import latency_from_files as f; \
#              print(f('OUT/trtexec.log', model='NAME', batch_size=1, times_json='OUT/times.json'))"
# Exit codes: 0 ok, 2 usage, 3 trtexec missing, 4 bundle problem (no engine), 5 trtexec failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
META="$HERE/metadata.json"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

PRECISION=""
BATCH=1
ITERATIONS=2000
WARMUP_MS=500
CLOCKS=1
OUT=""
ENGINE=""
TRTEXEC_BIN="${TRTEXEC:-}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --precision) PRECISION="${2:?--precision needs a value}"; shift 2 ;;
    --batch) BATCH="${2:?--batch needs a value}"; shift 2 ;;
    --iterations) ITERATIONS="${2:?--iterations needs a value}"; shift 2 ;;
    --warmup-ms) WARMUP_MS="${2:?--warmup-ms needs a value}"; shift 2 ;;
    --engine) ENGINE="${2:?--engine needs a value}"; shift 2 ;;
    --out) OUT="${2:?--out needs a value}"; shift 2 ;;
    --trtexec) TRTEXEC_BIN="${2:?--trtexec needs a value}"; shift 2 ;;
    --no-clocks) CLOCKS=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

for v in BATCH ITERATIONS WARMUP_MS; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]] || [[ "${!v}" -lt 1 ]]; then
    echo "error: --$(echo "$v" | tr 'A-Z_' 'a-z-') must be a positive integer, got '${!v}'" >&2; exit 2
  fi
done

[[ -f "$META" ]] || { echo "error: $META missing: run bench.sh from an edgekd bundle folder" >&2; exit 4; }

# Read what we need from metadata.json with python3 (always on JetPack), not jq (often absent).
# The batch limits come from the engine: its build record (<engine>.json, written by
# build_engine.py with the profile it really built, e.g. after --max-batch 32), else the engine
# itself through TensorRT's get_tensor_profile_shape (an engine built with trtexec);
# metadata.json's profile only when neither is readable.
read_meta() {
  python3 - "$META" "$PRECISION" "$BATCH" "$ENGINE" "$HERE" <<'PY'
import json, os, sys
meta = json.load(open(sys.argv[1]))
prec = sys.argv[2] or meta["default_precision"]
if prec not in meta["precisions"]:
    sys.stderr.write("error: precision '%s' not in this bundle (%s)\n" % (prec, ", ".join(sorted(meta["precisions"]))))
    sys.exit(2)
batch = int(sys.argv[3])
engine = sys.argv[4] or os.path.join(sys.argv[5], "%s.%s.engine" % (meta["model"], prec))
lo, hi = meta["optimization_profile"]["min_batch"], meta["optimization_profile"]["max_batch"]
source = "metadata.json"
try:
    prof = json.load(open(engine + ".json"))["profile"]
    lo, hi, source = int(prof["min"][0]), int(prof["max"][0]), os.path.basename(engine) + ".json"
except (OSError, ValueError, KeyError, IndexError, TypeError):
    if os.path.isfile(engine):
        try:
            import tensorrt as trt
            eng = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(open(engine, "rb").read())
            shapes = eng.get_tensor_profile_shape(meta["inputs"][0]["name"], 0)
            lo, hi, source = int(shapes[0][0]), int(shapes[2][0]), os.path.basename(engine)
        except Exception:  # no TensorRT here, or an engine it cannot load: trtexec will say so
            pass
if not lo <= batch <= hi:
    sys.stderr.write("error: --batch %d outside the engine's profile [%d, %d] (from %s)\n" % (batch, lo, hi, source))
    sys.exit(2)
inp = meta["inputs"][0]
print(prec, inp["name"], "x".join([str(batch)] + [str(d) for d in inp["shape"][1:]]), engine)
PY
}
read -r PRECISION INPUT SHAPE ENGINE < <(read_meta) || exit 2
[[ -n "${PRECISION:-}" ]] || exit 2
OUT="${OUT:-$HERE/bench-$PRECISION-b$BATCH-$(date +%Y%m%d-%H%M%S)}"

if [[ ! -f "$ENGINE" ]]; then
  echo "error: no engine at $ENGINE; build it first: python3 $HERE/build_engine.py --precision $PRECISION" >&2
  exit 4
fi

if [[ -z "$TRTEXEC_BIN" ]]; then
  TRTEXEC_BIN="$(command -v trtexec || true)"
  [[ -z "$TRTEXEC_BIN" && -x /usr/src/tensorrt/bin/trtexec ]] && TRTEXEC_BIN=/usr/src/tensorrt/bin/trtexec
fi
if [[ -z "$TRTEXEC_BIN" || ! -x "$TRTEXEC_BIN" ]]; then
  echo "error: trtexec not found (JetPack puts it in /usr/src/tensorrt/bin; or pass --trtexec PATH / set TRTEXEC)" >&2
  exit 3
fi

mkdir -p "$OUT"

# -- power mode and clocks ------------------------------------------------------------------
if command -v nvpmodel >/dev/null 2>&1; then
  nvpmodel -q > "$OUT/nvpmodel.txt" 2>&1 || echo "nvpmodel -q failed (exit $?)" >> "$OUT/nvpmodel.txt"
else
  echo "nvpmodel not found (not a Jetson?)" > "$OUT/nvpmodel.txt"
fi

SUDO=()
CLOCKS_STATE="not requested (--no-clocks)"
restore_clocks() {
  if [[ -f "$OUT/clocks.before" ]]; then
    "${SUDO[@]}" jetson_clocks --restore "$OUT/clocks.before" >/dev/null 2>&1 || \
      echo "warning: could not restore clocks from $OUT/clocks.before" >&2
  fi
}
if [[ "$CLOCKS" == 1 ]]; then
  if ! command -v jetson_clocks >/dev/null 2>&1; then
    CLOCKS_STATE="jetson_clocks not found (not a Jetson?)"
  elif [[ "$(id -u)" != 0 ]] && ! sudo -n true 2>/dev/null; then
    CLOCKS_STATE="not run: needs root (rerun with sudo, or pass --no-clocks to record that clocks were not locked)"
  else
    [[ "$(id -u)" != 0 ]] && SUDO=(sudo -n)
    if "${SUDO[@]}" jetson_clocks --store "$OUT/clocks.before" && "${SUDO[@]}" jetson_clocks; then
      trap restore_clocks EXIT
      CLOCKS_STATE="locked with jetson_clocks (restored on exit)"
      "${SUDO[@]}" jetson_clocks --show > "$OUT/clocks.txt" 2>&1 || true
    else
      CLOCKS_STATE="jetson_clocks failed"
    fi
  fi
fi
echo "$CLOCKS_STATE" >> "$OUT/clocks.txt"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "uname: $(uname -a)"
  [[ -f /etc/nv_tegra_release ]] && echo "l4t: $(head -n1 /etc/nv_tegra_release)"
  command -v dpkg-query >/dev/null 2>&1 && \
    echo "tensorrt_deb: $(dpkg-query -W -f='${Version}' tensorrt 2>/dev/null || echo none)"
  command -v nvidia-smi >/dev/null 2>&1 && \
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null | \
    sed 's/^/gpu: /'
  echo "trtexec: $TRTEXEC_BIN"
} > "$OUT/env.txt"

# -- timing ---------------------------------------------------------------------------------
CMD=("$TRTEXEC_BIN" "--loadEngine=$ENGINE" "--shapes=$INPUT:$SHAPE" --useCudaGraph --useSpinWait
     --noDataTransfers "--warmUp=$WARMUP_MS" "--iterations=$ITERATIONS" --duration=0
     "--exportTimes=$OUT/times.json")
echo "running: ${CMD[*]}"
set +e
"${CMD[@]}" > "$OUT/trtexec.log" 2>&1
STATUS=$?
set -e

python3 - "$OUT/bench.json" "$PRECISION" "$BATCH" "$ITERATIONS" "$WARMUP_MS" "$ENGINE" "$STATUS" \
  "$CLOCKS_STATE" "${CMD[*]}" <<'PY'
import json, sys
keys = ["precision", "batch", "iterations", "warmup_ms", "engine", "trtexec_exit", "clocks", "command"]
vals = sys.argv[2:]
d = dict(zip(keys, vals))
for k in ("batch", "iterations", "warmup_ms", "trtexec_exit"):
    d[k] = int(d[k])
d["nvpmodel"] = open(sys.argv[1].rsplit("/", 1)[0] + "/nvpmodel.txt").read().strip()
json.dump(d, open(sys.argv[1], "w"), indent=2)
PY

if [[ "$STATUS" != 0 ]]; then
  echo "error: trtexec exited with $STATUS; see $OUT/trtexec.log:" >&2
  grep -E '\[E\]|FAILED' "$OUT/trtexec.log" | tail -n 5 >&2 || true
  exit 5
fi
grep -E 'Throughput:|GPU Compute Time:' "$OUT/trtexec.log" | sed 's/^\[[^]]*\] \[I\] /  /' || true
echo "results in $OUT ($CLOCKS_STATE)"
