"""`agegate average`: the weighted mean of runs from one start (train/average.py)."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from agegate.edge.cli import cli
from agegate.edge.errors import UsageError
from agegate.train.average import average_arrays, mix_weights


def test_mix_weights_and_the_weighted_mean():
    assert mix_weights(None, 4) == [0.25] * 4
    assert mix_weights([3, 1], 2) == [0.75, 0.25]
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(UsageError):
            mix_weights(bad, 2)
    a = [np.array([0.0, 4.0], np.float32), np.ones((2, 2), np.float32)]
    b = [np.array([2.0, 0.0], np.float32), 3 * np.ones((2, 2), np.float32)]
    got = average_arrays([a, b], [0.75, 0.25])
    assert got[0].tolist() == [0.5, 3.0] and got[1].tolist() == [[1.5, 1.5], [1.5, 1.5]]
    assert got[0].dtype == np.float32
    with pytest.raises(UsageError, match="different weight shapes"):
        average_arrays([a, [a[0], np.ones(3, np.float32)]], [0.5, 0.5])


@pytest.mark.slow
def test_average_cli_writes_the_mean_of_two_runs(trained_run, converted, small_utk, tmp_path):
    """The float parent and the model recovered from its int8 file (one start, two sets of weights):
    weights (1, 0) give the first run back exactly, (0.5, 0.5) the element-wise mean; the sources are
    listed with their SHA-256; runs of another model are refused."""
    from agegate.convert.evaluate import predict, select_records
    from agegate.convert.tflite import load_keras_model
    from agegate.edge.metadata import read_metadata

    rec = tmp_path / "rec"
    r = CliRunner().invoke(cli, ["recover", str(converted["int8"]), "--data", str(small_utk), "--images", "32",
                                 "--out", str(rec)])
    assert r.exit_code == 0, r.output + repr(r.exception)

    first = tmp_path / "first"
    r = CliRunner().invoke(cli, ["average", str(trained_run), str(rec), "--weight", "1", "--weight", "0",
                                 "--out", str(first)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    recs = select_records(str(small_utk), "auto", None, "test", limit=20)
    assert np.allclose(predict(first, recs, progress=False).y_pred, predict(trained_run, recs, progress=False).y_pred,
                       atol=1e-4)

    mean = tmp_path / "mean"
    r = CliRunner().invoke(cli, ["average", str(trained_run), str(rec), "--out", str(mean), "--json"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    sources = json.loads(r.output)["sources"]
    assert [s["weight"] for s in sources] == [0.5, 0.5] and all(len(s["sha256"]) == 64 for s in sources)
    assert read_metadata(mean).extra["averaged_from"] == sources
    (a, _), (b, _), (m, _) = (load_keras_model(p) for p in (trained_run, rec, mean))
    for wa, wb, wm in zip(a.get_weights(), b.get_weights(), m.get_weights()):
        assert np.allclose(wm, (wa + wb) / 2, atol=1e-6)

    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    meta = json.loads((other / "model.json").read_text())
    meta["input_size"] = meta["preprocess"]["input_size"] = 64
    (other / "model.json").write_text(json.dumps(meta))
    r = CliRunner().invoke(cli, ["average", str(trained_run), str(other), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "only runs of one model" in r.output and "--across-sizes" in r.output
    # A fine-tune at another size from the same start, said so: the mean runs at the first run's size.
    r = CliRunner().invoke(cli, ["average", str(other), str(trained_run), "--across-sizes", "--json",
                                 "--out", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert [s["input_size"] for s in json.loads(r.output)["sources"]] == [64, read_metadata(trained_run).input_size]
    assert read_metadata(tmp_path / "x").input_size == 64


@pytest.mark.slow
def test_runs_that_certainly_share_no_start_are_refused(trained_run, tmp_path):
    """Two runs from random weights with other seeds averaged without a word (their mean is noise). Refused when
    every run's line is known and no run or start is common to all; a fine-tune and its start, two fine-tunes of
    one start, and anything whose line cannot be followed (a recovered run) still average."""
    from dataclasses import replace

    from agegate.edge.metadata import read_metadata
    from agegate.train.average import _check_one_start, lineage

    base = read_metadata(trained_run)

    def run(name: str, **cfg):
        return tmp_path / name, replace(base, extra={**base.extra, "train_config": {
            **base.extra["train_config"], **cfg}})

    a, b = run("a", weights="none", seed=0), run("b", weights="none", seed=1)
    with pytest.raises(UsageError, match=r"share no start.*/a from random weights, seed 0; .*/b from random weights, "
                                         r"seed 1"):
        _check_one_start([a[0], b[0]], [a[1], b[1]])
    with pytest.raises(UsageError, match="share no start"):  # ImageNet against random weights
        _check_one_start([a[0], tmp_path / "c"], [a[1], run("c", weights="imagenet")[1]])
    ft = run("ft", weights=str(trained_run / "model.keras"), seed=5)  # a fine-tune of trained_run
    assert lineage(*ft)[:2] == [f"run {(tmp_path / 'ft').resolve()}", f"run {trained_run.resolve()}"]
    _check_one_start([trained_run, ft[0]], [base, ft[1]])  # the start and its fine-tune
    ft2 = run("ft2", weights=str(trained_run), seed=6)  # the folder given, not its model.keras
    _check_one_start([ft[0], ft2[0]], [ft[1], ft2[1]])  # two fine-tunes of one start
    rec = replace(base, extra={**base.extra, "recovered_from": {"file": "m.tflite"}})
    assert lineage(tmp_path / "rec", rec) is None
    _check_one_start([a[0], tmp_path / "rec"], [a[1], rec])  # nothing claimed where a line cannot be followed
    gone = run("gone", weights=str(tmp_path / "moved" / "model.keras"))
    assert lineage(*gone) is None
