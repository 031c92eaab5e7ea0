"""Typed recipe schema.

A recipe is plain YAML data (no tags, no code) validated into these models before any
stage runs. Every model forbids unknown keys, so a typo fails with its dotted path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, protected_namespaces=(), allow_inf_nan=False)


#: bounds on what a recipe may declare, checked before anything is allocated
MAX_IMAGE_SIDE = 4096
MAX_SYNTHETIC_SAMPLES = 1_000_000
MAX_BATCH = 65536


def _unique_seeds(v: list[int]) -> list[int]:
    dup = sorted({s for s in v if v.count(s) > 1})
    if dup:
        raise ValueError(f"seeds must be distinct (repeated: {dup}); a repeated seed is the same run counted twice")
    return v


class SplitConfig(Strict):
    """How a dataset without a fixed split is divided (fractions of the pool)."""

    val: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 42

    @model_validator(mode="after")
    def _fractions(self) -> "SplitConfig":
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1 (got {self.val} + {self.test})")
        return self


class SyntheticConfig(Strict):
    """Built-in bright-field lymphocyte generator (LymphoMNIST format)."""

    n_train: int = Field(9000, gt=0, le=MAX_SYNTHETIC_SAMPLES)
    n_val: int = Field(1500, gt=0, le=MAX_SYNTHETIC_SAMPLES)
    n_test: int = Field(3000, gt=0, le=MAX_SYNTHETIC_SAMPLES)
    seed: int = 1234
    difficulty: float = Field(1.0, gt=0.0, description="scales class-overlap; >1 is harder")
    label_noise: float = Field(
        0.0, ge=0.0, lt=0.5,
        description="fraction of train/val labels assigned to a wrong class (the impurity of "
                    "fluorescence-gated ground truth); test labels stay true")


class NormalizeConfig(Strict):
    mean: float = 0.4819
    std: float = Field(0.1484, gt=0.0)


Size = int | tuple[int, int]


def _size(v: Any) -> Any:
    """An int (square) or [H, W]; [S, S] becomes S. Each side at least 8 pixels."""
    if isinstance(v, (list, tuple)):
        if len(v) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            raise ValueError(f"an image size is an int (square) or [H, W], got {v!r}")
        v = int(v[0]) if v[0] == v[1] else (int(v[0]), int(v[1]))
    sides = v if isinstance(v, tuple) else (v,)
    if any(isinstance(i, int) and i < 8 for i in sides):
        raise ValueError(f"image sides must be at least 8 pixels, got {v!r}")
    if any(isinstance(i, int) and i > MAX_IMAGE_SIDE for i in sides):
        raise ValueError(f"image sides must be at most {MAX_IMAGE_SIDE} pixels, got {v!r}")
    return v


class DataConfig(Strict):
    kind: Literal["synthetic", "lymphomnist", "npz", "imagefolder"] = "synthetic"
    path: Path | None = Field(None, description="folder (lymphomnist), .npz file (npz) or folder of class "
                                                "folders (imagefolder: root/<class>/*.png or root/train/<class>/...)")
    classes: list[str] | None = Field(
        None, description="class filter by name, in output order (e.g. [B, T4])"
    )
    teacher_size: Size = Field(64, description="int (square) or [H, W]")
    student_size: Size = Field(48, description="int (square) or [H, W]")
    channels: Literal[1, 3] | None = Field(
        None, description="the student's input channels; None: the data's own (gray 1, colour 3)")
    teacher_channels: Literal[1, 3] | None = Field(
        None, description="the teacher's input channels when they differ from the student's (gray↔RGB)")
    cache_dir: Path | None = Field(
        None, description="imagefolder: where decoded images are memory-mapped ($EDGEKD_CACHE or ~/.cache/edgekd)")
    normalize: NormalizeConfig = NormalizeConfig()
    split: SplitConfig = SplitConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    max_train: int | None = Field(None, gt=0, description="cap on training samples")

    @field_validator("teacher_size", "student_size", mode="before")
    @classmethod
    def _sizes(cls, v: Any) -> Any:
        return _size(v)

    @model_validator(mode="after")
    def _path_needed(self) -> "DataConfig":
        if self.kind in ("lymphomnist", "npz", "imagefolder") and self.path is None:
            raise ValueError(f"data.kind '{self.kind}' needs data.path")
        if self.classes is not None and len(self.classes) < 2:
            raise ValueError("data.classes must name at least two classes")
        return self


class OptimConfig(Strict):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)


class CropConfig(Strict):
    """Random resized crop: a box of ``scale`` × the area and ``ratio`` aspect, resized back."""

    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (0.75, 1.3333)

    @model_validator(mode="after")
    def _ranges(self) -> "CropConfig":
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"scale must be 0 < min <= max <= 1, got {list(self.scale)}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must be 0 < min <= max, got {list(self.ratio)}")
        return self


class AugmentConfig(Strict):
    """Replayable augmentations (see :mod:`edgekd.data.augment`); each sample has ``views`` fixed views.

    Intensities are in units of the normalized input (1 = one ``data.normalize.std``).
    """

    views: int = Field(8, ge=1, le=64, description="distinct views per sample (the teacher cache holds all)")
    seed: int = 0
    identity_view: bool = Field(True, description="view 0 is the unaugmented image")
    crop: CropConfig | None = None
    hflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a horizontal flip")
    vflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a vertical flip")
    rotate: float = Field(0.0, ge=0.0, le=45.0, description="max rotation in degrees (±)")
    brightness: float = Field(0.0, ge=0.0, description="max added offset (±)")
    contrast: float = Field(0.0, ge=0.0, lt=1.0, description="max relative contrast change (±)")
    noise: float = Field(0.0, ge=0.0, description="Gaussian noise std")
    cutout: float = Field(0.0, ge=0.0, lt=1.0, description="side of the erased box, fraction of the image")
    cutout_p: float = Field(0.5, ge=0.0, le=1.0, description="probability of a cutout")


class TrainConfig(Strict):
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(128, gt=0, le=MAX_BATCH)
    optim: OptimConfig = OptimConfig()
    augment: Literal["none", "dihedral"] | AugmentConfig = Field(
        "dihedral", description="'none', 'dihedral' (8 flips/rotations) or a mapping of random-view options")
    balanced: bool = Field(False, description="sample classes equally often (with replacement) each epoch")


class TeacherConfig(Strict):
    arch: str = "resnet-mini"
    params: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig = TrainConfig()
    checkpoint: Path | None = Field(None, description="load a trained teacher instead")


class LossTermConfig(Strict):
    """One weighted term of the student loss, e.g. ``{kd: {weight: 0.9, tau: 4}}``."""

    method: str
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)


class StudentConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    arch: str = "cellsort-cnn"
    params: dict[str, Any] = Field(default_factory=dict)
    loss: list[LossTermConfig] = Field(default_factory=lambda: [LossTermConfig(method="ce")])
    train: TrainConfig = TrainConfig(epochs=20, batch_size=64)
    export: bool = True
    init: str | None = Field(None, description="name of an earlier student whose trained weights (same seed) start "
                                               "this one: QAT fine-tuning from the float student of the same shape")

    @field_validator("loss", mode="before")
    @classmethod
    def _loss_terms(cls, v: Any) -> Any:
        return [_parse_loss_term(i, item) for i, item in enumerate(v or [])]

    @property
    def uses_teacher(self) -> bool:
        from edgekd.distill.losses import loss_needs_teacher

        return any(loss_needs_teacher(t.method) for t in self.loss)


def _parse_loss_term(i: int, item: Any) -> Any:
    """Accept ``{kd: 0.9}``, ``{kd: {weight: 0.9, tau: 4}}`` or the explicit form."""
    if isinstance(item, LossTermConfig):
        return item
    if isinstance(item, str):
        return {"method": item}
    if isinstance(item, dict) and "method" not in item:
        if len(item) != 1:
            raise ValueError(
                f"each loss term is a single-key mapping like {{kd: {{weight: 0.9}}}}; "
                f"term {i} has keys {sorted(item)}"
            )
        (method, spec), = item.items()
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return {"method": method, "weight": float(spec)}
        if spec is None:
            return {"method": method}
        if isinstance(spec, dict):
            spec = dict(spec)
            weight = spec.pop("weight", 1.0)
            return {"method": method, "weight": weight, "params": spec}
        raise ValueError(f"loss term '{method}' must be a weight or a mapping, got {spec!r}")
    return item


class OnnxExportConfig(Strict):
    enabled: bool = True
    opset: int = Field(17, ge=13)
    atol: float = Field(1e-4, gt=0.0)


class HlsExportConfig(Strict):
    enabled: bool = True
    target: str = Field("xcku035-fbva676-2-e", description="an FPGA file in hw/fpga/")
    backend: Literal["Vitis", "Vivado"] = "Vitis"
    io_type: Literal["io_stream", "io_parallel"] = "io_stream"
    strategy: Literal["Latency", "Resource"] = "Latency"
    reuse_factor: Literal["auto"] | int = Field(
        "auto", description="hls4ml ReuseFactor for every layer, or 'auto': per layer, the fastest factors whose "
                       "estimated DSPs fit the target part"
    )
    precision: Literal["auto"] | str = Field(
        "auto", description="'auto' (from observed ranges) or an ap_fixed<W,I> for all layers"
    )
    width: int = Field(16, ge=6, le=32, description="total bits per layer when precision is auto")
    min_agreement: float = Field(0.99, ge=0.0, le=1.0)
    n_check: int = Field(1000, gt=0, description="held-out images for the C-simulation check")

    @field_validator("reuse_factor")
    @classmethod
    def _reuse_at_least_one(cls, v: str | int) -> str | int:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be 'auto' or an integer ≥ 1")
        return v

    @property
    def base_reuse_factor(self) -> int:
        """The reuse factor of every layer not given its own (with 'auto': 1, the fitted ones are per layer)."""
        return 1 if self.reuse_factor == "auto" else int(self.reuse_factor)


class TensorRTExportConfig(Strict):
    """Jetson/TensorRT deploy bundle (FP32 + INT8 QDQ ONNX, build/check/bench scripts)."""

    enabled: bool = False
    precisions: list[Literal["int8", "fp16", "fp32"]] = ["int8", "fp16", "fp32"]
    default_precision: Literal["int8", "fp16", "fp32"] = "int8"
    opt_batch: int = Field(1, ge=1)
    max_batch: int = Field(256, ge=1)
    workspace_mib: int = Field(1024, ge=64)
    targets: list[str] = Field(default_factory=lambda: ["orin-nano-8gb", "orin-nx-16gb", "agx-orin-64gb",
                                                        "agx-thor", "xavier-nx", "agx-xavier"],
                               description="Jetson modules from hw/jetson/")
    n_golden: int = Field(64, ge=1)
    build: Literal["auto", "never", "always"] = Field(
        "auto", description="build engines here when TensorRT and a GPU are present (auto)")


class RtlExportConfig(Strict):
    """da4ml Verilog + Verilator emulation for quantized students (``*-q`` architectures)."""

    enabled: bool = True
    target: str = Field("xcku035-fbva676-2-e", description="an FPGA file in hw/fpga/")
    latency_cutoff: float = Field(5.0, gt=0.0, description="da4ml pipelining: ns of logic per register stage")
    n_check: int = Field(1000, gt=0, description="test inputs the emulator must match exactly")
    yosys: bool = Field(False, description="also count LUT/FF/DSP with Yosys (minutes for large designs)")


class CudaFusedExportConfig(Strict):
    """One generated Triton kernel per student (checked in Triton's interpreter on CPU, on the GPU where present)."""

    enabled: bool = False
    n_check: int = Field(64, gt=0, description="held-out images the kernel must match (the interpreter is slow)")


class ExportConfig(Strict):
    onnx: OnnxExportConfig = OnnxExportConfig()
    cuda_fused: CudaFusedExportConfig = CudaFusedExportConfig()
    hls: HlsExportConfig = HlsExportConfig()
    tensorrt: TensorRTExportConfig = TensorRTExportConfig()
    rtl: RtlExportConfig = RtlExportConfig()


class ProfileConfig(Strict):
    targets: list[Literal["cpu-torch", "onnxruntime", "cuda"]] = Field(
        default_factory=lambda: ["cpu-torch", "onnxruntime"],
        description="'cuda' is skipped with a message where no GPU is visible")
    batch_sizes: list[int] = [1, 256]
    runs: int = Field(1000, ge=10, description="timed calls at batch 1")
    large_batch_runs: int = Field(30, ge=3)
    warmup: int = Field(50, ge=1)
    threads: int = Field(1, ge=1)

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(b <= 0 or b > MAX_BATCH for b in v):
            raise ValueError(f"batch_sizes must be integers from 1 to {MAX_BATCH}")
        return v


class QuickConfig(Strict):
    """What ``--quick`` overrides: small data, few epochs, fewer timed calls."""

    n_train: int = Field(1000, gt=0, le=MAX_SYNTHETIC_SAMPLES)
    n_val: int = Field(300, gt=0, le=MAX_SYNTHETIC_SAMPLES)
    n_test: int = Field(600, gt=0, le=MAX_SYNTHETIC_SAMPLES)
    teacher_epochs: int = Field(3, ge=1, description="an untrained model is no result")
    student_epochs: int = Field(4, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    profile_runs: int = Field(200, ge=1)
    large_batch_runs: int = Field(3, ge=3)
    hls_n_check: int = Field(200, gt=0)

    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _unique_seeds(v)))


class SearchFamilyConfig(Strict):
    """One student family of a search: an arch and its parameters; a list is a choice."""

    arch: str
    params: dict[str, Any] = Field(default_factory=dict, description="a list is a choice among its items; a "
                                   "mapping whose values are lists (layer_bits) is one choice per key; else fixed")


class SearchConfig(Strict):
    """``edgekd search``: the space, the fidelity ladder and how a trial trains."""

    families: list[SearchFamilyConfig] = Field(min_length=1)
    knobs: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per target, its knobs (e.g. "
                                             "fpga-hls: {strategy: [Latency, Resource], reuse_factor: [1, auto]}); "
                                             "a list is a choice")
    trials: int = Field(30, ge=1, le=10000)
    epochs: list[int] = Field(default_factory=lambda: [2, 8], min_length=1, max_length=4,
                              description="training epochs at each rung; weak trials stop after the first")
    qat_epochs: int = Field(4, ge=1, description="fine-tuning epochs of a QAT candidate, from its trained float twin")
    qat_lr: float = Field(5e-4, gt=0.0)
    prune_margin: float = Field(0.05, ge=0.0, le=1.0, description="stop a trial whose first-rung validation "
                                "accuracy is this far below the best first-rung score so far")
    loss: list[LossTermConfig] = Field(default_factory=lambda: [LossTermConfig(method="ce", weight=0.1),
                                                                LossTermConfig(method="kd", weight=0.9,
                                                                               params={"tau": 4.0})])
    train: TrainConfig = TrainConfig(epochs=8, batch_size=64, optim=OptimConfig(lr=0.003))
    budget: dict[str, float | str] = Field(default_factory=dict, description="default budget (--budget overrides)")
    seed: int = 0
    profile_runs: int = Field(200, ge=10, description="timed calls per candidate on measured targets")

    @field_validator("knobs")
    @classmethod
    def _knob_targets(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        known = ("fpga-hls", "fpga-rtl", "onnxruntime", "cpu-torch")
        bad = [k for k in v if k not in known]
        if bad:
            raise ValueError(f"knobs for unknown target(s) {bad}; targets: {list(known)}")
        return v

    @field_validator("epochs")
    @classmethod
    def _rungs_increase(cls, v: list[int]) -> list[int]:
        if any(e < 1 for e in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"epochs must be increasing positive rungs like [2, 8], got {v}")
        return v

    @field_validator("loss", mode="before")
    @classmethod
    def _loss_terms(cls, v: Any) -> Any:
        return [_parse_loss_term(i, item) for i, item in enumerate(v or [])]


class ReferenceConfig(Strict):
    """A measured figure the report compares the FPGA students with (only where a recipe names one)."""

    name: str = Field(description="what it is, e.g. 'the study's FPGA'")
    first_pixel_to_decision_us: float = Field(gt=0.0)
    source: str = ""


class Recipe(Strict):
    name: str = Field("cellsort", pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    students: list[StudentConfig] = Field(min_length=1)
    export: ExportConfig = ExportConfig()
    profile: ProfileConfig = ProfileConfig()
    quick: QuickConfig = QuickConfig()
    reference: ReferenceConfig | None = None
    search: SearchConfig | None = None

    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _unique_seeds(v)))

    @model_validator(mode="after")
    def _unique_students(self) -> "Recipe":
        names = [s.name for s in self.students]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"student names must be unique; repeated: {sorted(dup)}")
        if "teacher" in names:
            raise ValueError("'teacher' is reserved and cannot name a student")
        for i, s in enumerate(self.students):
            if s.init is not None and s.init not in names[:i]:
                raise ValueError(f"students.{s.name}.init: '{s.init}' is not a student listed before it "
                                 f"(earlier students: {names[:i] or 'none'}); list the float student first")
        square = all(isinstance(v, int) for v in (self.data.teacher_size, self.data.student_size))
        rotating = [s.name for s in self.students if s.train.augment == "dihedral"]
        if self.teacher.train.augment == "dihedral":
            rotating.insert(0, "teacher")
        if not square and rotating:
            raise ValueError(f"train.augment 'dihedral' rotates by 90° and needs square images, but data sizes are "
                             f"[H, W] (used by {rotating}); set train.augment to 'none' or a mapping of "
                             "flips/rotation without 90° turns")
        return self

    @property
    def needs_teacher(self) -> bool:
        return any(s.uses_teacher for s in self.students)
