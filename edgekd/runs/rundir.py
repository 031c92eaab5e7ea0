"""The run directory: ``runs/<name>/`` with manifest, checkpoints, artifacts, report."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekd.runs.atomic import sha256_file, write_json


@dataclass
class RunDir:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def create(self) -> "RunDir":
        for p in (self.root, self.checkpoints, self.artifacts, self.cache, self.plots):
            p.mkdir(parents=True, exist_ok=True)
        return self

    def checkpoint(self, role: str, seed: int) -> Path:
        return self.checkpoints / f"{role}-seed{seed}.pt"

    def artifact_dir(self, model: str) -> Path:
        return self.artifacts / model


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("edgekd", "torch", "numpy", "onnx", "onnxruntime", "hls4ml", "brevitas", "qonnx",
                "pydantic", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(run: RunDir, *, recipe: dict[str, Any], seeds: list[int], quick: bool,
                   status: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` with SHA-256 of every file in the run directory."""
    files = {}
    for p in sorted(run.root.rglob("*")):
        # run.log keeps growing after the manifest is written: it is not an artifact.
        if p.is_file() and p.name not in ("manifest.json", "run.log", "tools.log") and not p.name.startswith("."):
            files[str(p.relative_to(run.root))] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {
        "edgekd_run": run.root.name,
        "status": status,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe,
        "seeds": seeds,
        "quick": quick,
        "versions": package_versions(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "files": files,
        **(extra or {}),
    }
    write_json(run.manifest_path, manifest)
    return manifest
