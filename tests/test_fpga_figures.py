from edgekd.config.schema import HlsExportConfig
from edgekd.nets import create_net
from edgekd.profile.fpga import hls_figures


def test_study_student_estimate_is_labelled_and_checked_against_the_part():
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    fig, lat = hls_figures(m, "cnn", (1, 48, 48), HlsExportConfig(strategy="Latency", reuse_factor=1), 16)
    assert fig.method == "estimated" and lat.method == "estimated" and lat.target == "fpga-hls"
    assert fig.part == "xcku035-fbva676-2-e"
    # io_stream: one input pixel per cycle into the first conv → at least 48×48 cycles between images
    assert fig.ii_cycles >= 48 * 48
    assert abs(fig.latency_us - fig.latency_cycles / fig.clock_mhz) < 1e-9
    assert fig.first_pixel_to_decision_us is not None  # the part has a pixel bus
    lo, hi = fig.intervals["first_pixel_to_decision_us"]
    assert lo <= fig.first_pixel_to_decision_us <= hi
    # fully parallel multipliers at RF1 exceed the KU035's 1,700 DSPs: flagged, with reuse factors that fit
    assert fig.percent["dsp"] > 100 and fig.details["fits_part"] is False
    rfs = fig.details["fitting_reuse_factors"]
    assert isinstance(rfs, dict) and all(r >= 1 for r in rfs.values()) and max(rfs.values()) > 1
    # the reuse search trades DSPs only; what else stays above the part at the upper end is stated
    if "reuse_alone_insufficient" in fig.details:
        assert "% of the part" in fig.details["reuse_alone_insufficient"]


def test_io_parallel_figures_are_judged_on_the_upper_ends():
    m = create_net("mlp", num_classes=2, in_channels=1, input_size=48, params={"hidden": 8})
    fig, _ = hls_figures(m, "mlp", (1, 48, 48), HlsExportConfig(io_type="io_parallel"), 12)
    assert fig.first_pixel_to_decision_us is not None  # whole image, then the design (test_first_pixel.py)
    assert fig.ii_cycles >= 1 and fig.percent["lut"] < 100  # the central estimate fits ...
    # ... and "fits the part" is judged on the upper end of each 80 % interval, and says so
    assert fig.details["fits_part"] == all(v <= 100 for v in fig.details["percent_upper"].values())
    assert fig.details["fits_part_rule"].startswith("upper end")
    lo, hi = fig.intervals["latency_cycles"]
    assert lo <= fig.latency_cycles <= hi and fig.coverage == 0.8
    assert "[" in fig.interval_text("latency_cycles", unit="cycles") and "80 %" in fig.interval_text("lut")


def test_fpga_plot_draws_every_interval_as_error_bars(tmp_path, monkeypatch):
    import matplotlib.axes

    from edgekd.report import plots

    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    fig, _ = hls_figures(m, "cnn", (1, 48, 48), HlsExportConfig(strategy="Resource", reuse_factor=8), 16)
    row = fig.to_dict()
    seen = {"errorbar": [], "bar": []}
    orig_eb, orig_bar = matplotlib.axes.Axes.errorbar, matplotlib.axes.Axes.bar

    def eb(self, x, y, yerr=None, **kw):
        seen["errorbar"].append((list(y), yerr))
        return orig_eb(self, x, y, yerr=yerr, **kw)

    def bar(self, x, h, width=0.8, yerr=None, **kw):
        seen["bar"].append((list(h), yerr))
        return orig_bar(self, x, h, width=width, yerr=yerr, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", eb)
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    out = plots.fpga_figures([row], tmp_path / "fpga.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    (y, (lo, hi)), *rest = seen["errorbar"]
    iv = row["intervals"]["latency_us"]
    assert y == [row["latency_us"]] and lo[0] == row["latency_us"] - iv[0] and hi[0] == iv[1] - row["latency_us"]
    assert rest, "first pixel → decision is drawn with its interval too"
    # one bar series per resource, each whisker spanning its interval as % of the part
    assert len(seen["bar"]) == 4
    (pct, (plo, phi)) = seen["bar"][2]  # DSP
    v, (dlo, dhi) = row["resources"]["dsp"], row["intervals"]["dsp"]
    assert abs(pct[0] - plo[0] - pct[0] * dlo / v) < 1e-6 and abs(pct[0] + phi[0] - pct[0] * dhi / v) < 1e-6


def test_reuse_hint_is_searched_past_the_projects_own_reuse_factors(monkeypatch):
    """Layers read from a written project carry its reuse factors; the hint must not be pinned to them."""
    from edgekd.profile import fpga_estimate as fe

    real = fe.layers_from_torch

    def as_read_from_a_project(model, shape):
        layers = real(model, shape)
        for lay in layers:
            if lay.kind in ("dense", "conv2d"):
                lay.reuse_factor = 1  # what parameters.h of a reuse-1 project says
        return layers

    monkeypatch.setattr(fe, "layers_from_torch", as_read_from_a_project)
    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    fig, _ = hls_figures(m, "cnn", (1, 48, 48), HlsExportConfig(strategy="Latency", reuse_factor=1), 16)
    assert fig.percent["dsp"] > 100 and fig.details["fits_part"] is False
    assert max(fig.details["fitting_reuse_factors"].values()) > 1


def test_auto_reuse_design_is_its_own_hint(monkeypatch):
    """A design written with reuse_factor: auto already has the fastest DSP-fitting factors: no second search."""
    import edgekd.profile.first_pixel as fp
    from edgekd.hwtargets import load_fpga
    from edgekd.profile.fpga_estimate import HlsConfig, layers_from_torch

    m = create_net("cellsort-cnn", num_classes=2, in_channels=1, input_size=48)
    cfg = HlsConfig(io_type="io_stream", strategy="Resource", reuse_factor=1, weight_bits=16, act_bits=16,
                    backend="Vitis")
    chosen = fp.fastest_fitting_reuse(layers_from_torch(m, (1, 48, 48)), cfg, load_fpga("xcku035-fbva676-2-e"))

    def no_search(*a, **k):
        raise AssertionError("searched again")

    monkeypatch.setattr(fp, "fastest_fitting_reuse", no_search)
    fig, _ = hls_figures(m, "cnn", (1, 48, 48), HlsExportConfig(strategy="Resource", reuse_factor="auto"), 16,
                         layer_reuse=chosen)
    assert fig.details["fits_part"] is False  # LUT's upper end (test_study_student_...: DSPs fit here)
    assert fig.details["fitting_reuse_factors"] == chosen and "lut" in fig.details["reuse_alone_insufficient"]


def test_project_facts_reach_the_model_layers():
    from edgekd.profile.fpga import _project_layers
    from edgekd.profile.fpga_estimate import HlsLayer

    model = [HlsLayer("conv", "conv2d", (8, 8, 1), (6, 6, 4), 3), HlsLayer("fc", "dense", (144,), (2,))]
    project = [HlsLayer("c", "conv2d", (8, 8, 1), (6, 6, 4), 3, reuse_factor=9, weight_bits=8, data_bits=12,
                        result_bits=37), HlsLayer("relu", "act", (144,), (144,)),
               HlsLayer("d", "dense", (144,), (2,), reuse_factor=16, data_bits=16, result_bits=41,
                        weight_csd=(100, 120, 60, 8))]
    got = _project_layers(project, model)
    assert [(l.reuse_factor, l.data_bits, l.result_bits) for l in got] == [(9, 12, 37), (16, 16, 41)]
    assert got[0].weight_bits == 8
    assert got[1].weight_csd == (100, 120, 60, 8) and got[0].weight_csd is None
