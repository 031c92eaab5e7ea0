"""Target descriptions from ``hw/``: FPGA parts and boards (and later Jetson modules, CPUs)."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekd.errors import ConfigError

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
    return sorted(p.stem for p in (HW_DIR / "fpga").glob("*.yaml"))


def load_fpga(name_or_path: str) -> FpgaTarget:
    """Load an FPGA description by name (a file in ``hw/fpga/``) or by path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = HW_DIR / "fpga" / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ConfigError(f"unknown FPGA target '{name_or_path}'", where="export.hls.target",
                          fix=f"use one of {available_fpgas()} or the path of a YAML file like them")
    try:
        return FpgaTarget.model_validate(yaml.safe_load(p.read_text()))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(f"invalid FPGA description: {exc}", where=str(p)) from None
