"""Target descriptions from ``hw/``: FPGA parts and boards (and later Jetson modules, CPUs)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekd.errors import ConfigError

_M = TypeVar("_M", bound=BaseModel)

HW_DIR = Path(__file__).resolve().parents[1] / "hw"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FpgaResources(_Strict):
    lut: int = Field(gt=0)
    ff: int = Field(gt=0)
    dsp: int = Field(ge=0)
    bram_36k: int = Field(ge=0)


class PixelBus(_Strict):
    pixels_per_clock: int = Field(gt=0)
    clock_mhz: float = Field(gt=0)
    bits_per_pixel: int = Field(8, gt=0)


class FpgaTarget(_Strict):
    name: str
    kind: str = "fpga"
    vendor: str
    family: str
    part: str
    speed_grade: int | None = None
    clock_mhz: float = Field(gt=0)
    resources: FpgaResources
    pixel_bus: PixelBus | None = None
    notes: str = ""

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz


def available_fpgas() -> list[str]:
    """Names of the FPGA descriptions in ``hw/fpga/`` (files whose ``kind`` is ``fpga``)."""
    out = []
    for p in (HW_DIR / "fpga").glob("*.yaml"):
        try:
            doc = yaml.safe_load(p.read_text())
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "fpga":
            out.append(p.stem)
    return sorted(out)


def _load_description(name_or_path: str, folder: str, model: type[_M], *, what: str, where: str,
                      available: Callable[[], list[str]]) -> _M:
    """A target description by name (``hw/<folder>/<name>.yaml``) or by path, validated into ``model``."""
    p = Path(name_or_path)
    if not p.suffix:
        p = HW_DIR / folder / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ConfigError(f"unknown {what} '{name_or_path}'", where=where,
                          fix=f"use one of {available()} or the path of a YAML file like them")
    try:
        return model.model_validate(yaml.safe_load(p.read_text()))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(f"invalid {what} description: {exc}", where=str(p)) from None


def load_fpga(name_or_path: str) -> FpgaTarget:
    """Load an FPGA description by name (a file in ``hw/fpga/``) or by path."""
    return _load_description(name_or_path, "fpga", FpgaTarget, what="FPGA target", where="export.hls.target",
                             available=available_fpgas)


# -- Jetson modules --------------------------------------------------------------------------

class JetsonGpu(_Strict):
    architecture: str
    cuda_cores: int = Field(gt=0)
    tensor_cores: int = Field(ge=0)
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")


class JetsonSoftware(_Strict):
    """One JetPack release the module runs, with the TensorRT/CUDA it ships (None: not recorded)."""

    jetpack: str
    tensorrt: str
    l4t: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    python: str | None = None
    ubuntu: str | None = None

    @property
    def tensorrt_major(self) -> int:
        return int(self.tensorrt.split(".")[0])


class JetsonTarget(_Strict):
    name: str
    kind: str = "jetson"
    module: str
    gpu: JetsonGpu
    dla_cores: int = Field(ge=0)
    memory_gb: float = Field(gt=0)
    power_modes: list[str] = Field(default_factory=list)
    software: list[JetsonSoftware] = Field(min_length=1)  # the recommended JetPack first
    notes: str = ""

    @property
    def default_software(self) -> JetsonSoftware:
        return self.software[0]


def available_jetsons() -> list[str]:
    return sorted(p.stem for p in (HW_DIR / "jetson").glob("*.yaml"))


def load_jetson(name_or_path: str) -> JetsonTarget:
    """Load a Jetson module description by name (a file in ``hw/jetson/``) or by path."""
    return _load_description(name_or_path, "jetson", JetsonTarget, what="Jetson module",
                             where="export.tensorrt.targets", available=available_jetsons)
