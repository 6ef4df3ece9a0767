"""Benchmark CLI: output schema and ratios on a tiny model. No test asserts a timing."""
import json

import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli

pytestmark = pytest.mark.slow  # trains or converts a model


def test_bench_models_schema_and_ratio(converted, tmp_path):
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(converted["float32"]), str(converted["int8"]), "--threads", "1,2",
                                 "--runs", "8", "--warmup", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(out.read_text())
    env = d["environment"]
    for k in ("cpu_model", "cores", "isa", "os", "python", "runtime", "runtime_version", "delegate",
              "agegate_version"):
        assert k in env
    assert len(d["results"]) == 4
    for row in d["results"]:
        for k in ("init_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput_per_s", "size_mb",
                  "input_type", "output_type", "ratio_vs_first", "rss_added_mb"):
            assert k in row
    assert [r_["ratio_vs_first"] for r_ in d["results"] if r_["model"].endswith("float32.tflite")] == [1.0, 1.0]
    for fmt, marker in (("json", '"results"'), ("csv", "p50_ms"), ("md", "| model |")):
        r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), "--threads", "1", "--runs", "3", "--warmup",
                                     "1", "--format", fmt])
        assert r.exit_code == 0 and marker in r.output, r.output


def test_bench_counts_both_views_of_a_mirror_tta_model(converted, tmp_path):
    import shutil

    mirror = tmp_path / "mirror.tflite"
    shutil.copy(converted["int8"], mirror)
    meta = json.loads(converted["int8"].with_suffix(".json").read_text())
    mirror.with_suffix(".json").write_text(json.dumps({**meta, "tta": "mirror"}))
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), str(mirror), "--threads", "1", "--runs", "5",
                                 "--warmup", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    plain, tta = json.loads(out.read_text())["results"]
    assert (plain["invokes_per_face"], tta["invokes_per_face"]) == (1, 2)
    # per-face latency is measured (every view of a face timed together), not p50 x views
    assert plain["p50_per_face_ms"] > 0 and tta["p50_per_face_ms"] > 0
    assert "2 views per face" in r.output


def test_bench_real_input_profile_and_report(converted, small_utk, tmp_path):
    out = tmp_path / "a.json"
    r = CliRunner().invoke(cli, ["bench", str(converted["int8"]), "--threads", "1", "--runs", "3", "--warmup", "1",
                                 "--input", f"real:{small_utk}", "--profile", "--out", str(out)])
    assert r.exit_code == 0 and "benchmark_model" in r.output
    r = CliRunner().invoke(cli, ["bench", "report", str(out), str(out), "--out", str(tmp_path / "rep.md"),
                                 "--png", str(tmp_path / "rep.png")])
    assert r.exit_code == 0
    md = (tmp_path / "rep.md").read_text()
    assert md.count("m-int8.tflite") == 2 and (tmp_path / "rep.png").stat().st_size > 1000


def test_bench_pipeline_reports_stages(shipped_model, tmp_path):
    r = CliRunner().invoke(cli, ["bench", "pipeline", "--frames", "40", "--json"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads(r.output)
    assert d["frames"] == 40 and d["fps"] > 0
    assert set(d["stages"]) == {"capture", "detect", "crop", "look", "infer", "fuse", "frame"}
