"""Every documented box.toml key takes effect, and every value is checked the same way from a file or a flag."""
import dataclasses

import pytest

from agegate.edge.config import BoxConfig, runtime_plan, sections, settings, validate
from agegate.edge.errors import ConfigError

BASE = {"source": {"uri": "0"}, "model": {"path": "m.tflite"}}


def other_value(section: str, key: str, default):
    """A valid value different from the default, from the key's own range or choices."""
    f = settings(section)[key]
    meta = f.metadata
    if meta["choices"]:
        return next(c for c in meta["choices"] if c != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, str) or default is None and meta["lo"] is None:
        return "other-value"
    lo, hi = meta["lo"], meta["hi"]
    v = (lo + hi) / 2 if default is None else (default + 1 if default + 1 <= hi else lo)
    return int(v) if "int" in str(f.type) and "float" not in str(f.type) else float(v)


def all_keys():
    return [(s, k) for s in sections() for k in settings(s)]


@pytest.mark.parametrize("section,key", all_keys())
def test_every_key_changes_what_the_box_runs(section, key):
    default = getattr(getattr(BoxConfig(), section), key)
    value = other_value(section, key, default)
    raw = {s: dict(v) for s, v in BASE.items()}
    raw.setdefault(section, {})[key] = value
    if (section, key) == ("decision", "min_frames"):
        raw["decision"]["decide_after"] = max(value, 10)
    if (section, key) == ("api", "host"):
        raw["api"]["token"] = "t"  # an address beyond this machine needs a token (below)
    base_plan, plan = runtime_plan(validate(BASE)), runtime_plan(validate(raw))
    assert plan != base_plan, f"{section}.{key} = {value!r} has no effect on the box"


def test_the_two_keys_that_used_to_be_ignored_reach_the_pipeline():
    raw = {**BASE, "detector": {"min_score": 0.7}, "model": {"path": "m", "latency_budget_ms": 9}}
    plan = runtime_plan(validate(raw))
    assert plan.box.detector.min_score == 0.7 and plan.box.latency_budget_ms == 9.0


@pytest.mark.parametrize("section,key,value", [("decision", "id_threshold", -3), ("model", "threads", 0),
                                               ("api", "port", 70000), ("detector", "min_score", 1.5),
                                               ("events", "retention_days", 0), ("detector", "name", "yolo")])
def test_out_of_range_values_are_refused_from_file_and_flag_alike(section, key, value):
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        validate({**BASE, section: {**BASE.get(section, {}), key: value}})
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        BoxConfig().override({f"{section}.{key}": value})


@pytest.mark.parametrize("host,token,ok", [("0.0.0.0", "", False), ("192.168.1.20", "", False), ("0.0.0.0", "s", True),
                                           ("127.0.0.1", "", True), ("localhost", "", True), ("::1", "", True)])
def test_an_endpoint_beyond_this_machine_needs_a_token(host, token, ok):
    """/setup shows the live camera: served on an address others reach without a token, anyone on the store's
    network could watch the till. Refused from box.toml and flags alike; with --no-api there is no endpoint."""
    raw = {**BASE, "api": {"host": host, "token": token}}
    if ok:
        validate(raw)
    else:
        with pytest.raises(ConfigError, match="api.host .* without api.token"):
            validate(raw)
        with pytest.raises(ConfigError, match="without api.token"):
            validate(BASE).override({"api.host": host})
        validate({**BASE, "api": {"host": host, "enabled": False}})


def test_defaults_live_in_one_place():
    # the plan from an empty config uses the dataclass defaults, nothing else
    cfg = validate(BASE)
    assert dataclasses.asdict(cfg.decision) == dataclasses.asdict(BoxConfig().decision)
    # ... and box.toml's detector defaults are the camera profile's (one measured value each)
    from agegate.edge.detect import DetectorOptions

    camera, plan = DetectorOptions(), runtime_plan(cfg).box.detector
    for key in ("min_face", "min_score", "refine_below", "small_face_score", "refine_margin"):
        assert getattr(plan, key) == getattr(camera, key) == getattr(BoxConfig().detector, key), key
    # ... and its quality defaults the box's (BoxOptions, where the measurements behind them are cited)
    from agegate.edge.pipeline import BoxOptions

    for key in ("min_quality_face", "min_sharpness", "min_eye_light"):
        assert getattr(runtime_plan(cfg).box, key) == getattr(BoxOptions(), key) == getattr(BoxConfig().quality, key), key


def test_decide_after_must_be_reachable():
    """A track fuses at most `window` (15) good frames, so a larger decide_after would never be reached and every
    buyer would be decided only when they left: refused in box.toml, and by the pipeline for library callers."""
    from agegate.edge.errors import UsageError
    from agegate.edge.pipeline import BoxOptions, BoxPipeline

    with pytest.raises(ConfigError, match=r"decision.decide_after \(20\) must be at most 15"):
        validate({**BASE, "decision": {"decide_after": 20}})
    assert runtime_plan(validate({**BASE, "decision": {"decide_after": 15}})).box.decide_after == 15
    with pytest.raises(UsageError, match=r"^decide_after \(16\) must be at most 15"):
        BoxPipeline(None, BoxOptions(decide_after=16))
    with pytest.raises(ConfigError, match=r"decision.decide_after \(3\) must be at least min_frames \(5\)"):
        validate({**BASE, "decision": {"decide_after": 3, "min_frames": 5}})


def test_relative_paths_in_box_toml_name_files_beside_it(tmp_path, monkeypatch):
    """The service runs in the config's folder; `edge run --config` or `device doctor` started elsewhere once read
    the same relative paths from their own folder (another model, another events file). Now every reader takes
    them beside box.toml; cameras, streams and absolute paths are left as they are."""
    from agegate.edge.config import load_config

    box = tmp_path / "etc" / "box.toml"
    box.parent.mkdir()
    box.write_text('[source]\nuri = "clips/till.mp4"\n[model]\npath = "m.tflite"\n[events]\npath = "/var/ev.sqlite"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config("etc/box.toml")
    assert cfg.model.path == str(box.parent / "m.tflite") and cfg.source.uri == str(box.parent / "clips/till.mp4")
    assert cfg.events.path == "/var/ev.sqlite"
    for uri in ("0", "/dev/video2", "rtsp://cam/1"):
        box.write_text(f'[source]\nuri = "{uri}"\n[model]\npath = "m.tflite"\n')
        assert load_config(box).source.uri == uri

