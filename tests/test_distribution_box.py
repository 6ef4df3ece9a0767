"""A distribution model on the box, end to end: a real (tiny) .tflite with one logit per year, through the
real pipeline on a video of the demo portraits. P(under 25) reaches the decision, /decision's JSON and the
events table; the operating point the model carries decides. Builds its model with TensorFlow (slow)."""
from __future__ import annotations

import dataclasses
import json
import sqlite3

import cv2
import pytest

from agegate.edge.capture import FrameSource
from agegate.edge.challenge25 import OperatingPoint
from agegate.edge.default_model import assets_dir
from agegate.edge.events import EventStore
from agegate.edge.metadata import read_metadata, write_metadata
from agegate.edge.pipeline import BoxOptions, BoxPipeline
from agegate.edge.runtime import AgeModel

from .conftest import gaussian_model, portrait_video

pytestmark = pytest.mark.slow
CENTRE = 22.0  # every face gets a distribution around 22: P(under 25) about 0.7


@pytest.fixture(scope="module")
def dist_model(tmp_path_factory):
    """A float .tflite whose logits are a fixed Gaussian around CENTRE (the image only nudges them)."""
    return gaussian_model(tmp_path_factory.mktemp("dist") / "dist.tflite", CENTRE)


def run_box(model_path, video, db):
    store = EventStore(db, retention_days=0)
    pipe = BoxPipeline(AgeModel(model_path), BoxOptions(), store)
    made = []
    pipe.run(FrameSource(str(video)), on_decision=made.append)
    store.close()
    return pipe, made


def test_the_operating_point_decides_and_the_risk_is_recorded(dist_model, tmp_path):
    video = portrait_video(tmp_path / "v.mp4")
    # Without an operating point (not calibrated yet): the fused age against 25, the risk still reported
    _, made = run_box(dist_model, video, tmp_path / "a.sqlite")
    assert len(made) == 1 and made[0].decision == "id_check"
    risk = made[0].risk
    assert 0.5 < risk < 0.9 and made[0].age == pytest.approx(CENTRE, abs=0.5)
    assert json.loads(json.dumps(made[0].to_dict()))["p_under_25"] == pytest.approx(risk, abs=1e-4)
    row = sqlite3.connect(tmp_path / "a.sqlite").execute("SELECT p_under_25, model FROM events").fetchone()
    assert row[0] == pytest.approx(risk, abs=1e-4) and row[1].startswith("dist.tflite:")

    # Carrying an operating point above this risk: ok; below it: id_check, whatever the fused age says
    meta = read_metadata(dist_model)
    for max_risk, expected in ((risk + 0.05, "ok"), (risk - 0.05, "id_check")):
        write_metadata(dist_model, dataclasses.replace(meta, operating_point=OperatingPoint(max_risk)))
        _, made = run_box(dist_model, video, tmp_path / f"{expected}.sqlite")
        assert [d.decision for d in made] == [expected]


def test_eval_reports_calibration_and_the_curve_for_a_distribution_model(dist_model, tmp_path, cli):
    folder = tmp_path / "faces"
    folder.mkdir()
    rows = ["path,age"]
    for i, p in enumerate(sorted((assets_dir() / "demo").glob("*.jpg"))):
        for k, age in enumerate((16, 22, 40)):
            dst = folder / f"{i}_{k}.jpg"
            dst.write_bytes(p.read_bytes())
            rows.append(f"{dst.name},{age}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    r = cli("eval", "--model", dist_model, "--data", folder / "labels.csv", "--split", "all", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["calibration"]["all"]["n"] == 6 and 0 <= m["calibration"]["all"]["coverage_80"] <= 1
    assert m["risk_curve"][0]["minors_ok"] == 0.0
    r = cli("eval", "--model", dist_model, "--data", folder / "labels.csv", "--split", "all", "--curve",
            tmp_path / "c25.png")
    assert "80 % interval holds the true age" in r.output
    assert cv2.imread(str(tmp_path / "c25.png")) is not None
    r = cli("eval", "--model", dist_model, "--data", folder / "labels.csv", "--split", "all", "--bands",
            tmp_path / "bands.png", "--json")
    assert r.exit_code == 0 and cv2.imread(str(tmp_path / "bands.png")) is not None
