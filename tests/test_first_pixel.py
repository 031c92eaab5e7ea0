"""First pixel to decision: pixel-bus arrival plus compute, applied to the study's student."""
from __future__ import annotations

import pytest

from edgekd.errors import ConfigError
from edgekd.hwtargets import PixelBus, load_fpga
from edgekd.profile.first_pixel import (STUDY_FIRST_PIXEL_TO_DECISION_US, arrival_us, parallel_first_pixel,
                                        stream_first_pixel, study_configuration)
from edgekd.profile.fpga_estimate import HlsConfig, layers_from_torch

KU035 = "xcku035-fbva676-2-e"


@pytest.fixture(scope="module")
def study_layers():
    from edgekd.nets.students import cellsort_cnn

    return layers_from_torch(cellsort_cnn(2, 1, 48), (1, 48, 48))


def test_arrival_of_last_pixel():
    bus = PixelBus(pixels_per_clock=8, clock_mhz=250)
    assert arrival_us(2304, bus) == (0.0, pytest.approx(287 / 250))  # 288 bus words, the last at word 287
    assert arrival_us(1, bus) == (0.0, 0.0)
    assert arrival_us(9, PixelBus(pixels_per_clock=1, clock_mhz=100))[1] == pytest.approx(0.08)


def test_study_configuration_fits_and_states_its_interval(study_layers):
    t = load_fpga(KU035)
    cfg = study_configuration(study_layers, t)
    res, est = stream_first_pixel(study_layers, cfg, t, model="cellsort-cnn")
    assert est.upper()["dsp"] <= t.resources.dsp  # fits at the upper end of the DSP interval
    assert cfg.layer_reuse[study_layers[0].name] == 1  # the first conv keeps its full rate
    assert res.last_pixel_arrival_us == pytest.approx(1.148)
    lo, hi = res.details["first_pixel_to_decision_interval_us"]
    # Vitis HLS, Resource strategy: a window costs ~2.5 cycles at RF 1 → far above the old 11.65 µs
    assert lo <= res.first_pixel_to_decision_us <= hi
    assert res.first_pixel_to_decision_us > STUDY_FIRST_PIXEL_TO_DECISION_US
    assert res.method == "estimated" and res.details["coverage"] == pytest.approx(0.8)


def test_slow_bus_dominates(study_layers):
    t = load_fpga(KU035).model_copy(update={"pixel_bus": PixelBus(pixels_per_clock=1, clock_mhz=25)})
    cfg = HlsConfig(io_type="io_stream", strategy="Resource", layer_reuse={"0": 1, "3": 3, "7": 5})
    res, _ = stream_first_pixel(study_layers, cfg, t)
    assert res.last_pixel_arrival_us == pytest.approx(2303 / 25)
    # arrival-bound: the decision follows the last pixel by only the pipeline's tail
    assert 0 < res.compute_after_last_pixel_us < 1.0


def test_parallel_design_waits_for_the_whole_image():
    t = load_fpga(KU035)
    r = parallel_first_pixel(2304, 9, t, model="x")
    assert r.first_pixel_to_decision_us == pytest.approx(287 / 250 + 10 / 200)
    assert r.method == "simulated"


def test_target_without_pixel_bus_is_refused(study_layers):
    t = load_fpga(KU035).model_copy(update={"pixel_bus": None})
    with pytest.raises(ConfigError, match="pixel_bus"):
        parallel_first_pixel(10, 1, t)
    with pytest.raises(ConfigError, match="io_stream"):
        stream_first_pixel(study_layers, HlsConfig(io_type="io_parallel"), load_fpga(KU035))


def test_reuse_search_reaches_large_factors_and_data_dependent_runs(study_layers):
    from edgekd.profile.first_pixel import fastest_fitting_reuse
    from edgekd.profile.fpga_estimate import valid_reuse_factor

    t = load_fpga(KU035)
    cfg = HlsConfig(io_type="io_stream", strategy="Resource", backend="Vitis", clock_mhz=t.clock_mhz)
    rfs = fastest_fitting_reuse(study_layers, cfg, t)
    smallest = [r for r in range(1, 40) if valid_reuse_factor(1600, 2, r)][:6]
    # the dense head runs once per image: it trades DSPs for a few cycles beyond the six smallest factors
    assert rfs["7"] > max(smallest) and rfs["0"] == 1
    cfg.layer_reuse = rfs
    res, est = stream_first_pixel(study_layers, cfg, t)
    lo_c, hi_c = res.details["csynth_latency_range_us"]
    lo, hi = res.details["first_pixel_to_decision_interval_us"]
    # Resource convs: the image's own run lies inside C synthesis's data-dependent range, whose top the interval covers
    assert lo_c < res.first_pixel_to_decision_us < hi_c and lo <= res.first_pixel_to_decision_us and hi >= hi_c
    assert est.latency_cycles == est.latency_range_cycles[1]


def test_io_parallel_figures_wait_for_the_last_pixel_with_the_estimates_interval():
    import torch.nn as nn

    from edgekd.config.schema import HlsExportConfig
    from edgekd.profile.first_pixel import arrival_us
    from edgekd.profile.fpga import hls_figures

    m = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, 2))
    fig, _ = hls_figures(m, "mlp", (1, 48, 48), HlsExportConfig(io_type="io_parallel", strategy="Latency",
                                                                 reuse_factor=1), 8)
    t = load_fpga("xcku035-fbva676-2-e")
    _, last = arrival_us(48 * 48, t.pixel_bus)
    assert fig.first_pixel_to_decision_us == pytest.approx(last + (fig.latency_cycles + 1) / fig.clock_mhz)
    lo, hi = fig.intervals["first_pixel_to_decision_us"]
    assert last < lo <= fig.first_pixel_to_decision_us <= hi
