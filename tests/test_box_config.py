"""Every documented box.toml key takes effect, and every value is checked the same way from a file or a flag."""
import dataclasses
import re

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
                                               ("events", "retention_days", 0), ("detector", "name", "yolo"),
                                               ("source", "rotate", 45)])
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



def test_every_key_says_what_it_does():
    """`agegate device config` writes each key under its doc: a key without one would be a bare name to the field
    engineer who edits the file."""
    assert [f"{s}.{k}" for s, k in all_keys() if not settings(s)[k].metadata["doc"]] == []


def _device_config(*args):
    from click.testing import CliRunner

    from agegate.edge.cli import cli

    return CliRunner().invoke(cli, ["device", "config", *map(str, args)])


def test_device_config_writes_a_box_toml_the_box_reads_as_the_defaults(tmp_path):
    """The written file sets the camera, the installed release's model and the --set keys, and nothing else: every
    other key stays agegate's default (commented out, so a later release's better default reaches the box)."""
    from agegate.edge.config import load_config

    out = tmp_path / "etc" / "box.toml"
    r = _device_config("--root", tmp_path / "box", "--source", "rtsp://cam/1", "--set", "box.store=store-12",
                       "--set", "box.till=3", "--set", "quality.min_sharpness=12", "--out", out)
    assert r.exit_code == 0, r.output
    assert f"agegate device doctor --config {out}" in r.output
    cfg = load_config(out)
    want = BoxConfig().override({"source.uri": "rtsp://cam/1", "box.store": "store-12", "box.till": "3",
                                 "model.path": str(tmp_path / "box/current/model.tflite"),
                                 "quality.min_sharpness": 12.0})
    assert cfg == dataclasses.replace(want, events=dataclasses.replace(
        want.events, path=str(out.parent / "events.sqlite")))  # relative: beside the file, as the box reads it
    text = out.read_text()
    for section, key in all_keys():  # every key is in the file, under a comment that says what it does
        assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{section}.{key} missing"


def test_the_commented_defaults_are_the_defaults(tmp_path):
    """Uncommenting every key the file shows at its default changes nothing: the file cannot show one default while
    the box runs another."""
    from agegate.edge.config import load_config

    out = tmp_path / "box.toml"
    assert _device_config("--out", out).exit_code == 0
    lines = out.read_text().splitlines()
    keyed = [ln[2:] if re.match(r"# [a-z_]+ = (?!\(unset\))", ln) else ln for ln in lines]  # `# key = default`
    assert sum(a != b for a, b in zip(lines, keyed)) == sum(
        1 for s, k in all_keys() if getattr(getattr(BoxConfig(), s), k) is not None and (s, k) != ("source", "uri")
        and (s, k) != ("model", "path"))
    full = tmp_path / "full.toml"
    full.write_text("\n".join(keyed))
    assert load_config(full) == load_config(out)


def test_device_config_refuses_bad_keys_and_keeps_an_existing_file(tmp_path):
    out = tmp_path / "box.toml"
    r = _device_config("--set", "decision.id_threshold=12", "--out", out)
    assert r.exit_code == 1 and "decision.id_threshold = 12.0 is outside 18..100" in r.output and not out.exists()
    r = _device_config("--set", "box.nope=1")
    assert r.exit_code == 1 and "unknown key box.nope; known: id, store, till" in r.output
    r = _device_config("--set", "store-12")
    assert r.exit_code == 2 and "give SECTION.KEY=VALUE" in r.output
    out.write_text("# a store's own box.toml\n")
    r = _device_config("--out", out)
    assert r.exit_code == 2 and "exists: pass --force" in r.output and out.read_text() == "# a store's own box.toml\n"
    r = _device_config("--out", out, "--force")
    assert r.exit_code == 0 and (tmp_path / "box.toml.previous").read_text() == "# a store's own box.toml\n"
    assert "[decision]" in out.read_text()


def test_device_config_json_lists_every_key():
    import json

    r = _device_config("--json", "--set", "box.till=3")
    keys = {k["key"]: k for k in json.loads(r.output)["keys"]}
    assert r.exit_code == 0 and json.loads(r.output)["ok"] and set(keys) == {f"{s}.{k}" for s, k in all_keys()}
    assert keys["box.till"]["value"] == "3" and keys["box.till"]["set"] and not keys["box.id"]["set"]
    assert keys["decision.id_threshold"]["min"] == 18 and keys["source.uri"]["required"]
    assert keys["detector.name"]["choices"] == ["blazeface-short", "blazeface-full", "haar"]
