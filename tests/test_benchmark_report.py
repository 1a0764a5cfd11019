"""The benchmark report derives every figure from the pytest-benchmark JSON correctly.

A synthetic run with round numbers: a 10 GFLOP/frame network at 640x360 on a machine whose
FMA peak is 200 GFLOP/s; eager PyTorch takes 0.5 s, ONNX Runtime 0.2 s, fastsr 0.1 s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` lives at the root

from benchmarks import report  # noqa: E402


def _model(runner: str, median: float, batch: int = 1, max_err: float = 0.0) -> dict:
    info = dict(
        kind="model",
        model="net_x2",
        runner=runner,
        width=640,
        height=360,
        batch=batch,
        scale=2,
        weights="shipped",
        headline=True,
        gflop_per_frame=10.0,
        max_err=max_err,
    )
    return {"name": f"model-{runner}-b{batch}", "extra_info": info, "stats": {"median": median}}


def _entry(median: float, **info) -> dict:
    return {"name": str(info), "extra_info": info, "stats": {"median": median}}


@pytest.fixture
def bench() -> dict:
    return {
        "datetime": "2026-01-01T00:00:00",
        "machine_info": {"fastsr": {"fma_peak_gflops": 200.0, "threads": 2}},
        "benchmarks": [
            _model("torch_eager", 0.5),
            _model("onnxruntime", 0.2, max_err=3e-7),
            _model("fastsr_cpu", 0.1, max_err=5e-6),
            _model("fastsr_cpu", 0.2, batch=4),
            _entry(
                0.001,
                kind="bicubic",
                implementation="cv2_inter_cubic_u8",
                width=640,
                height=360,
                batch=1,
                scale=2,
                max_level_diff=1,
                mean_level_diff=0.01,
            ),
            _entry(
                0.004,
                kind="bicubic",
                implementation="pillow_bicubic_u8",
                width=640,
                height=360,
                batch=1,
                scale=2,
                max_level_diff=9,
                mean_level_diff=0.8,
            ),
            _entry(
                3.0,
                kind="quality",
                model="net_x2",
                scale=2,
                psnr=37.5,
                ssim=0.96,
                data="d",
                per_dataset={
                    "Set5": {"psnr": 38.0, "ssim": 0.961},
                    "Set14": {"psnr": 37.0, "ssim": 0.959},
                },
            ),
            _entry(1.0, kind="quality", model="bicubic", scale=2, psnr=33.6, ssim=0.93, data="d"),
        ],
    }


def _row(rows: list[dict], runner: str, batch: int = 1) -> dict:
    return next(r for r in rows if r["runner"] == runner and r["batch"] == batch)


def test_rates_follow_from_median_time_and_flops(bench):
    ours = _row(report.model_rows(bench), "fastsr_cpu")
    assert ours["ms_per_frame"] == pytest.approx(100.0)
    assert ours["fps"] == pytest.approx(10.0)
    assert ours["gflops"] == pytest.approx(100.0)  # 10 GFLOP x 10 fps
    assert ours["pct_peak"] == pytest.approx(50.0)  # 100 of 200 GFLOP/s


def test_speedups_compare_the_same_network_size_and_batch(bench):
    rows = report.model_rows(bench)
    assert _row(rows, "fastsr_cpu")["vs_eager"] == pytest.approx(5.0)  # 0.5 s / 0.1 s
    assert _row(rows, "fastsr_cpu")["vs_ort"] == pytest.approx(2.0)  # 0.2 s / 0.1 s
    assert _row(rows, "onnxruntime")["vs_eager"] == pytest.approx(2.5)
    assert _row(rows, "torch_eager")["vs_eager"] == pytest.approx(1.0)


def test_batch_time_is_shared_by_its_frames_and_has_no_peer_without_one(bench):
    batched = _row(report.model_rows(bench), "fastsr_cpu", batch=4)
    assert batched["ms_per_frame"] == pytest.approx(50.0)  # 0.2 s for 4 frames
    assert batched["fps"] == pytest.approx(20.0)
    assert batched["vs_eager"] is None and batched["vs_ort"] is None


def test_markdown_has_a_row_per_run_with_ratios_and_error(bench):
    text = report.render(bench)
    assert "### net_x2 (×2, shipped weights, headline network)" in text
    row = "| fastsr_cpu | 640×360 | 1 | 100.0 | 10.00 | 100.0 | 50% | 5.00× | 2.00× | 5.0e-06 |"
    assert row in text
    assert "| fastsr_cpu | 640×360 | 4 | 50.0 | 20.00 | 200.0 | 100% | – | – |" in text
    assert "FMA peak: 200 GFLOP/s" in text


def test_summary_lists_fps_per_runner_at_640x360(bench):
    text = report.render(bench)
    assert "| model | fastsr_cpu | torch_eager | onnxruntime | fastsr cpu × eager |" in text
    assert "| net_x2 | 10.00 | 2.00 | 5.00 | 5.00× | 2.00× |" in text


def test_quality_points_pair_psnr_with_the_fastest_measured_speed(bench):
    points = {p["model"]: p for p in report.quality_points(bench, report.model_rows(bench))}
    assert points["net_x2"]["fps"] == pytest.approx(10.0)  # fastsr_cpu, batch 1
    assert points["net_x2"]["runner"] == "fastsr_cpu"
    assert points["bicubic"]["fps"] == pytest.approx(1000.0)  # the fastest bicubic peer
    assert points["bicubic"]["psnr"] == pytest.approx(33.6)


def test_quality_table_lists_each_dataset(bench):
    text = report.render(bench)
    row = "| net_x2 | ×2 | Set14 37.00 / 0.9590, Set5 38.00 / 0.9610 | 37.50 | 10.00 |"
    assert row in text


def test_command_writes_markdown_and_plot(bench, tmp_path):
    pytest.importorskip("matplotlib")
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(bench))
    assert report.main([str(source), "-o", str(tmp_path / "BENCHMARKS.md")]) == 0
    assert (tmp_path / "quality_vs_speed.png").stat().st_size > 0
    assert (
        "![quality against speed](quality_vs_speed.png)" in (tmp_path / "BENCHMARKS.md").read_text()
    )


def test_peak_given_on_the_command_line_replaces_the_measured_one(bench, tmp_path):
    pytest.importorskip("matplotlib")
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(bench))
    output = tmp_path / "BENCHMARKS.md"
    assert report.main([str(source), "-o", str(output), "--peak", "400"]) == 0
    text = output.read_text()
    assert "FMA peak: 400 GFLOP/s (given with --peak)" in text
    assert "| 100.0 | 25% |" in text  # fastsr: 100 GFLOP/s of 400


def test_front_door_table_shows_user_time_over_engine_time(bench):
    bench["benchmarks"] += [
        _entry(
            0.105,
            kind="front_door",
            model="fast_x2",
            width=640,
            height=360,
            threads=2,
            engine_ms=100.0,
            user_ms=105.0,
            user_over_engine=1.05,
        ),
        _entry(0.07, kind="startup", what="fastsr --help"),
    ]
    text = report.render(bench)
    assert "| fast_x2 | 640×360 | 2 | 100.0 | 105.0 | 1.050 |" in text
    assert "| `fastsr --help` | 0.07 |" in text


def test_video_table_shows_both_paths_rates_and_each_steps_share(bench):
    planes = {"decode": 0.04, "to RGB": 0.0, "model": 0.8, "to YUV": 0.0, "encode and mux": 0.3}
    rgb = {"decode": 0.04, "to RGB": 0.05, "model": 0.8, "to YUV": 0.06, "encode and mux": 0.3}
    bench["benchmarks"].append(
        _entry(
            3.0,
            kind="video_stages",
            model="fast_x2",
            width=640,
            height=360,
            threads=2,
            frames=72,
            engine_fps=30.0,
            paths={
                "planes": {
                    "fps": 24.0,
                    "model_step_fps": 28.0,
                    "cpu_ms_per_frame": 80.4,
                    "shares": planes,
                },
                "rgb": {
                    "fps": 22.5,
                    "model_step_fps": 26.0,
                    "cpu_ms_per_frame": 91.0,
                    "shares": rgb,
                },
            },  # fmt: skip
        )
    )
    text = report.render(bench)
    assert "The engine alone: 30.0 frames/s." in text
    assert "| frames as | frames/s | model step frames/s | CPU ms/frame | decode | to RGB |" in text
    assert "| planes | 24.0 | 28.0 | 80 | 4 % | 0 % | 80 % | 0 % | 30 % |" in text
    assert "| rgb | 22.5 | 26.0 | 91 | 4 % | 5 % | 80 % | 6 % | 30 % |" in text


def _precision(engine: str, precision: str, median: float, set5: float | None,
               model: str = "fast_x2") -> dict:  # fmt: skip
    return _entry(median, kind="precision", model=model, engine=engine, precision=precision,
                  width=640, height=360, threads=2, psnr_vs_fp32=None, set5_psnr=set5)  # fmt: skip


def test_precision_table_compares_every_engine_with_fastsr_fp32(bench):
    bench["benchmarks"] += [
        _precision("openvino", "int8", 0.08, 36.28),
        _precision("onnxruntime", "int8", 0.2, 36.77),
        _precision("fastsr", "int8", 0.05, 36.99),
        _precision("fastsr", "fp32", 0.1, 37.0),
        _precision("fastsr", "bf16", 0.0625, None),  # PSNR not measured: no delta
    ]
    rows = {(r["engine"], r["precision"]): r for r in report.precision_rows(bench)}
    assert rows["fastsr", "int8"]["vs_fastsr_fp32"] == pytest.approx(2.0)  # 0.1 s / 0.05 s
    assert rows["onnxruntime", "int8"]["vs_fastsr_fp32"] == pytest.approx(0.5)
    assert rows["openvino", "int8"]["set5_delta"] == pytest.approx(-0.72)
    assert rows["fastsr", "bf16"]["set5_delta"] is None
    text = report.render(bench)
    table = text[text.index("## Precisions") :].split("\n\n")[1].splitlines()[2:]
    assert [line.split(" | ")[2:4] for line in table] == [
        ["fastsr", "fp32"],
        ["fastsr", "int8"],
        ["fastsr", "bf16"],
        ["onnxruntime", "int8"],
        ["openvino", "int8"],
    ]
    assert (
        "| fast_x2 | 640×360 | fastsr | int8 | 50.0 | 20.00 | 2.00× | 36.99 dB | -0.010 dB |"
        in text
    )
    assert "| openvino | int8 | 80.0 | 12.50 | 1.25× | 36.28 dB | -0.720 dB |" in text
    assert "| fastsr | bf16 | 62.5 | 16.00 | 1.60× | – | – |" in text


def _spandrel(runner: str, median: float, max_err: float, model: str = "compact") -> dict:
    return _entry(
        median,
        kind="spandrel",
        model=model,
        runner=runner,
        width=240,
        height=135,
        path="kernels",
        max_err=max_err,
    )


def test_spandrel_table_gives_each_peer_as_a_ratio_to_fastsr(bench):
    bench["benchmarks"] += [
        _spandrel("fastsr", 0.5, 1e-7),
        _spandrel("eager", 2.0, 0.0),
        _spandrel("onnxruntime", 1.5, 2e-7),
        _spandrel("openvino", 1.0, 3e-7),
        _spandrel("fastsr", 0.4, 5e-6, model="rrdb"),  # no peer installed: dashes
    ]
    lines = report.spandrel_table(bench)
    assert lines[0] == "## spandrel models"
    assert "ONNX Runtime (× fastsr)" in lines[2] and "OpenVINO (× fastsr)" in lines[2]
    compact = next(line for line in lines if line.startswith("| compact "))
    assert compact == (
        "| compact | 240×135 | kernels | 500 ms | 2000 ms (4.00×) "
        "| 1500 ms (3.00×) | 1000 ms (2.00×) "
        "| 1.0e-07 / 0.0e+00 / 2.0e-07 / 3.0e-07 |"
    )
    rrdb = next(line for line in lines if line.startswith("| rrdb "))
    assert rrdb == "| rrdb | 240×135 | kernels | 400 ms | – | – | – | 5.0e-06 / – / – / – |"
    assert "## spandrel models" in report.render(bench)


def test_no_spandrel_runs_no_spandrel_table(bench):
    assert report.spandrel_table(bench) == []


def test_the_full_run_ends_with_engines_and_precisions_side_by_side(bench):
    precisions = [
        _precision("fastsr", "fp32", 0.100, 37.0, model="net_x2"),
        _precision("fastsr", "int8", 0.040, 36.98, model="net_x2"),
        _precision("openvino", "int8", 0.080, 36.5, model="net_x2"),
    ]
    text = report.comparison({"benchmarks": bench["benchmarks"] + precisions})
    assert "| net_x2 | 10.00 | 2.00 | 5.00 | 5.00× | 2.00× |" in text  # fps at 640x360
    rows = text.splitlines()
    first = "| net_x2 | 640×360 | "
    assert first + "fastsr | int8 | 40.0 | 25.00 | 2.50× | 36.98 dB | -0.020 dB |" in rows
    assert first + "openvino | int8 | 80.0 | 12.50 | 1.25× | 36.50 dB | -0.500 dB |" in rows
    assert "### net_x2" not in text  # the per-network sweep tables stay in BENCHMARKS.md
    assert report.comparison({"benchmarks": []}) == ""


@pytest.mark.parametrize(
    "quick,sweep,runs", [(True, "", True), (False, "", False), (False, "1", True)]
)
def test_a_sweep_only_network_is_left_out_of_the_ten_minute_run_only(
    monkeypatch, quick, sweep, runs
):
    import benchmarks

    monkeypatch.setenv("FASTSR_BENCH_SWEEP", sweep)
    monkeypatch.delenv("FASTSR_BENCH_MODELS", raising=False)
    sweep_only = [n for n, s in benchmarks.network_specs().items() if s.sweep_only]
    assert sweep_only  # shapes.json marks the heaviest reference network (EDSR baseline)
    names = {case.network for case in benchmarks.model_cases(quick)}
    assert all((name in names) == runs for name in sweep_only)
    assert "fast_x2" in names
