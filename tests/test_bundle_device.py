"""Signed bundles and the box's install/rollback, against a temporary root, with real crafted files."""
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from click.testing import CliRunner

from agegate.edge.bundle_format import check_release, tar_bytes
from agegate.edge.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isfile()}


def test_build_refuses_failed_qa_unless_forced(kit):
    r = run("bundle", "build", "--model", kit / "model.tflite", "--qa", kit / "qa_failed.json", "--sign-key",
            kit / "fleet.pem", "--version", "9", "--out", kit / "bad.tar.gz", "--json")
    assert r.exit_code == 1 and "failed QA: mae (9.1" in r.stderr and not (kit / "bad.tar.gz").exists()
    assert json.loads(r.stdout)["ok"] is False and "failed QA" in json.loads(r.stdout)["message"]
    r = run("bundle", "build", "--model", kit / "model.tflite", "--qa", kit / "qa_failed.json", "--sign-key",
            kit / "fleet.pem", "--version", "9", "--force", "--out", kit / "forced.tar.gz", "--json")
    assert r.exit_code == 0 and "FORCED" in r.stderr
    got = json.loads(r.stdout)
    assert got["forced"] and not got["qa_passed"] and got["version"] == "9" and "model.tflite" in got["files"]
    assert "FORCED" in run("bundle", "info", kit / "forced.tar.gz", "--pub", kit / "fleet.pub").output
    meta = json.loads(members(kit / "forced.tar.gz")["model.json"])
    assert meta["bundle"]["forced"] is True


def test_the_data_a_qa_verdict_stands_on_travels_to_the_box(kit, tmp_path):
    """qa records the sets, splits and images it judged; the signed manifest carries them to `bundle info` and to
    `device status` on the box. A report from before says nothing of it, and nothing is said."""
    qa = json.loads((kit / "qa.json").read_text())
    judged = tmp_path / "qa.json"
    judged.write_text(json.dumps({**qa, "data": [
        {"name": "utkface", "path": "/d/utkface", "split": "test", "images": 2396, "skipped": 0, "limit": None},
        {"name": "aaf", "path": "/d/aaf", "split": "test", "images": 297, "skipped": 3, "limit": 300}]}))
    r = run("bundle", "build", "--model", kit / "model.tflite", "--qa", judged, "--sign-key", kit / "fleet.pem",
            "--version", "2.0.0", "--out", tmp_path / "b.tar.gz")
    assert r.exit_code == 0, r.output
    said = "utkface [test] 2396 images, aaf [test] 297 images (--limit) (3 left out: unreadable or no face)"
    info = run("bundle", "info", tmp_path / "b.tar.gz", "--pub", kit / "fleet.pub")
    assert f"QA passed on {said}, MAE 5.0" in info.output, info.output
    root = tmp_path / "box"
    assert run("device", "install", tmp_path / "b.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    r = run("device", "status", "--root", root)
    assert r.exit_code == 0 and f"QA judged on {said} (MAE 5.00)" in r.output, r.output
    live = json.loads(run("device", "status", "--root", root, "--json").stdout)["releases"][0]
    assert live["qa_data"] == said.split(", ")
    r = run("bundle", "info", kit / "b-1.0.0.tar.gz", "--pub", kit / "fleet.pub")  # a report that did not say
    assert "QA passed, MAE 5.0" in r.output


def test_a_box_that_runs_a_forced_model_says_so_when_it_starts(kit, tmp_path, caplog):
    """--force is recorded in the bundle and shown at install, status and doctor; the box itself, which decides
    with it, started without a word."""
    import logging

    from agegate.edge.pipeline import BoxPipeline
    from agegate.edge.runtime import AgeModel

    root, forced = tmp_path / "box", tmp_path / "forced.tar.gz"
    assert run("bundle", "build", "--model", kit / "model.tflite", "--qa", kit / "qa_failed.json", "--sign-key",
               kit / "fleet.pem", "--version", "9", "--force", "--out", forced).exit_code == 0
    assert run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    with caplog.at_level(logging.WARNING, logger="agegate.edge"):
        BoxPipeline(AgeModel(root / "current" / "model.tflite"))
        assert "QA" not in caplog.text
        assert run("device", "install", forced, "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
        forced_box = BoxPipeline(AgeModel(root / "current" / "model.tflite"))
    assert "was bundled with --force after it failed QA (MAE 9.10)" in caplog.text
    # and every event row it writes names it so (the chain's fleet report lists models by this label)
    assert forced_box.model.label.startswith("model 9 FORCED:")


def test_build_takes_a_qa_report_only_for_the_bytes_it_judged(kit, tmp_path):
    """A report that names what it judged by sha256 (`agegate qa` writes both) holds for those bytes only: a
    retrained model of the same name, or this model with its sidecar rewritten (a new operating point QA never
    checked), is refused; the same bytes under another name are fine. Older reports match by name, as before."""
    from agegate.edge.metadata import sha256_file

    from .conftest import copy_model

    model = copy_model(kit / "model.tflite", tmp_path / "model.tflite")
    qa = json.loads((kit / "qa.json").read_text())
    qa.update(quantized_sha256=sha256_file(model), quantized_metadata_sha256=sha256_file(model.with_suffix(".json")))
    (tmp_path / "qa.json").write_text(json.dumps(qa))

    def build(m, out):
        return run("bundle", "build", "--model", m, "--qa", tmp_path / "qa.json", "--sign-key", kit / "fleet.pem",
                   "--version", "5", "--out", tmp_path / out)

    assert build(model, "ok.tar.gz").exit_code == 0
    before = (tmp_path / "ok.tar.gz").read_bytes()
    r = build(model, "ok.tar.gz")  # a signed bundle is not written over
    assert r.exit_code == 2 and "is not written over" in r.output and (tmp_path / "ok.tar.gz").read_bytes() == before
    (tmp_path / "renamed").mkdir()
    renamed = copy_model(model, tmp_path / "renamed" / "shipped.tflite")
    assert build(renamed, "renamed.tar.gz").exit_code == 0  # the same bytes: the name does not matter
    (tmp_path / "other").mkdir()
    other = copy_model(model, tmp_path / "other" / "model.tflite")
    other.write_bytes(other.read_bytes() + b"\0")  # another model under the same name
    r = build(other, "other.tar.gz")
    assert r.exit_code == 1 and "judged another file" in r.output and not (tmp_path / "other.tar.gz").exists()
    meta = json.loads(model.with_suffix(".json").read_text())
    meta["operating_point"]["max_risk"] = 0.3  # recalibrated after QA, looser
    model.with_suffix(".json").write_text(json.dumps(meta))
    r = build(model, "changed.tar.gz")
    assert r.exit_code == 1 and "changed since QA" in r.output and not (tmp_path / "changed.tar.gz").exists()


def test_verify_and_info(kit):
    assert run("bundle", "verify", kit / "b-1.0.0.tar.gz", "--pub", kit / "fleet.pub").exit_code == 0
    r = run("bundle", "verify", kit / "b-1.0.0.tar.gz", "--pub", kit / "other.pub")
    assert r.exit_code == 1 and "signature does not verify" in r.output
    info = json.loads(run("bundle", "info", kit / "b-1.0.0.tar.gz", "--json").output)
    assert set(info["files"]) == {"model.tflite", "model.json", "MODEL_CARD.md", "qa/report.json"}


def test_install_status_rollback_and_keep_three(kit, tmp_path):
    root = tmp_path / "box"
    for v in ("1.0.0", "1.1.0"):
        r = run("device", "install", kit / f"b-{v}.tar.gz", "--root", root, "--pub", kit / "fleet.pub")
        assert r.exit_code == 0, r.output
    s = json.loads(run("device", "status", "--root", root, "--json").output)
    assert s["current"] == "1.1.0" and s["previous"] == "1.0.0" and not s["forced_live"]
    assert all(r_["intact"] for r_ in s["releases"])
    assert os.readlink(root / "current") == "releases/1.1.0"
    assert run("device", "rollback", "--root", root).exit_code == 0
    assert os.readlink(root / "current") == "releases/1.0.0"
    for v in ("1.2.0", "1.3.0"):
        assert run("device", "install", kit / f"b-{v}.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1.0.0", "1.2.0", "1.3.0"]
    # rolling back twice goes two releases back, not back onto the release the first rollback left
    assert run("device", "rollback", "--root", root).exit_code == 0
    assert os.readlink(root / "current") == "releases/1.2.0"
    assert run("device", "rollback", "--root", root).exit_code == 0
    assert os.readlink(root / "current") == "releases/1.0.0"
    r = run("device", "rollback", "--root", root)
    assert r.exit_code == 1 and "no earlier intact release" in r.output
    assert os.readlink(root / "current") == "releases/1.0.0"


def test_json_for_scripts_results_and_errors(kit, tmp_path):
    """A field script that drives boxes passes --json and reads stdout: the result when the command worked,
    and on failure what went wrong with the exit code (the human message still goes to stderr)."""
    root = tmp_path / "box"
    r = run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub", "--json")
    got = json.loads(r.stdout)
    assert r.exit_code == 0 and got["ok"] and got["version"] == "1.0.0" and got["previous"] is None
    assert got["smoke"]["p50_ms"] > 0
    r = run("device", "install", kit / "b-1.1.0.tar.gz", "--root", root, "--pub", kit / "other.pub", "--json")
    err = json.loads(r.stdout)
    assert r.exit_code == 1 and err == {"ok": False, "error": "BundleError", "message": err["message"], "exit_code": 1}
    assert "signature does not verify" in err["message"] and "signature does not verify" in r.stderr
    assert os.readlink(root / "current") == "releases/1.0.0"
    r = run("device", "rollback", "--root", root, "--json")  # nothing to roll back to
    assert r.exit_code != 0 and json.loads(r.stdout)["ok"] is False
    run("device", "install", kit / "b-1.1.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub")
    r = run("device", "rollback", "--root", root, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"ok": True, "version": "1.0.0", "previous": "1.1.0"}
    r = run("bundle", "verify", kit / "b-1.0.0.tar.gz", "--pub", kit / "fleet.pub", "--json")
    assert json.loads(r.stdout) == {"ok": True, "name": "m", "version": "1.0.0", "files": 4, "forced": False}
    r = run("device", "rollback", "--root", root, "--json", "--retries", "3")  # a bad option, also as JSON
    assert r.exit_code == 2 and json.loads(r.stdout)["error"] == "UsageError" and "--retries" in r.stderr
    r = run("bundle", "verify", kit / "b-1.0.0.tar.gz", "--pub", kit / "other.pub")  # no --json: no JSON
    assert r.exit_code == 1 and r.stdout == ""


def _craft(kit: Path, tmp_path: Path, name: str, change) -> Path:
    files = members(kit / "b-1.0.0.tar.gz")
    change(files)
    out = tmp_path / name
    out.write_bytes(tar_bytes(files))
    return out


def _assert_refused(bundle, kit, root, msg):
    before = os.readlink(root / "current") if (root / "current").is_symlink() else None
    r = run("device", "install", bundle, "--root", root, "--pub", kit / "fleet.pub")
    assert r.exit_code == 1 and msg in r.output, r.output
    after = os.readlink(root / "current") if (root / "current").is_symlink() else None
    assert before == after
    assert not list((root / "releases").glob(".staging-*")) if (root / "releases").exists() else True


def test_refuses_tampered_unsigned_and_unsafe_bundles(kit, tmp_path):
    root = tmp_path / "box"
    assert run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0

    def flip_byte(f):
        b = bytearray(f["model.tflite"])
        b[len(b) // 2] ^= 0xFF
        f["model.tflite"] = bytes(b)

    _assert_refused(_craft(kit, tmp_path, "flip.tar.gz", flip_byte), kit, root, "does not match its SHA-256")

    def bad_sig(f):
        m = json.loads(f["manifest.json"])
        m["version"] = "6.6.6"
        f["manifest.json"] = json.dumps(m).encode()

    _assert_refused(_craft(kit, tmp_path, "sig.tar.gz", bad_sig), kit, root, "signature does not verify")
    _assert_refused(_craft(kit, tmp_path, "nosig.tar.gz", lambda f: f.pop("manifest.sig")), kit, root,
                    "not an agegate bundle")
    for name, member in (("dotdot.tar.gz", "../evil.txt"), ("abs.tar.gz", "/etc/evil.txt")):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:gz") as t:
            for k, v in members(kit / "b-1.0.0.tar.gz").items():
                info = tarfile.TarInfo(k)
                info.size = len(v)
                t.addfile(info, io.BytesIO(v))
            info = tarfile.TarInfo(member)
            info.size = 4
            t.addfile(info, io.BytesIO(b"evil"))
        (tmp_path / name).write_bytes(raw.getvalue())
        _assert_refused(tmp_path / name, kit, root, "unsafe path")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as t:
        info = tarfile.TarInfo("model.tflite")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    (tmp_path / "link.tar.gz").write_bytes(raw.getvalue())
    _assert_refused(tmp_path / "link.tar.gz", kit, root, "is a link")
    assert not (tmp_path / "evil.txt").exists()


def _broken_bundle(kit, tmp_path, version: str) -> Path:
    """A correctly signed bundle whose model cannot run (truncated, still starting with the TFL3 header)."""
    from agegate.convert.bundle import build_bundle

    broken = tmp_path / "model.tflite"
    data = (kit / "model.tflite").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    shutil.copy(kit / "model.json", broken.with_suffix(".json"))
    qa = json.loads((kit / "qa.json").read_text())
    qa["quantized_model"] = str(broken)
    (tmp_path / "qa.json").write_text(json.dumps(qa))
    build_bundle(broken, tmp_path / "qa.json", tmp_path / "broken.tar.gz", kit / "fleet.pem", version=version)
    return tmp_path / "broken.tar.gz"


def test_failed_smoke_test_keeps_old_release(kit, tmp_path):
    """A correctly signed bundle whose model cannot run: the smoke test fails, 1.0.0 stays current."""
    root = tmp_path / "box"
    assert run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    _assert_refused(_broken_bundle(kit, tmp_path, "2.0.0"), kit, root, "install of 2.0.0 failed, 1.0.0 stays current")
    assert not (root / "releases" / "2.0.0").exists()


def test_a_failed_reinstall_keeps_the_earlier_copy_of_its_version(kit, tmp_path):
    """Reinstalling a version the box keeps for rollback (not live) once deleted that copy before the new one's
    smoke test: a bundle that failed it left the box without its rollback target."""
    root = tmp_path / "box"
    for v in ("1.0.0", "1.1.0"):
        assert run("device", "install", kit / f"b-{v}.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    _assert_refused(_broken_bundle(kit, tmp_path, "1.0.0"), kit, root, "install of 1.0.0 failed, 1.1.0 stays current")
    assert all(check_release(root / "releases" / "1.0.0").values())
    r = run("device", "rollback", "--root", root)
    assert r.exit_code == 0 and (root / "current").resolve().name == "1.0.0"


def test_one_install_or_rollback_at_a_time(kit, tmp_path):
    """A second install or rollback while one holds the box's lock is refused, said so, and changes nothing
    (two at once could write state.json over each other and prune the release the other made live)."""
    import fcntl

    root = tmp_path / "box"
    assert run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    assert run("device", "install", kit / "b-1.1.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    with open(root / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for args in (["install", kit / "b-1.2.0.tar.gz", "--pub", kit / "fleet.pub"], ["rollback"]):
            r = run("device", *args, "--root", root)
            assert r.exit_code != 0 and "another install or rollback is running" in r.output, r.output
        assert (root / "current").resolve().name == "1.1.0" and not (root / "releases" / "1.2.0").exists()
    assert run("device", "rollback", "--root", root).exit_code == 0  # released: works again


def test_a_damaged_install_history_is_rebuilt_not_a_traceback(kit, tmp_path):
    """state.json cut short by a power failure made status, rollback and install end in a JSONDecodeError (the
    install after switching `current`). The history is now rebuilt from the release folders, said as a warning,
    and written anew by the next install or rollback, the damaged file kept."""
    root = tmp_path / "box"
    for v in ("1.0.0", "1.1.0"):
        assert run("device", "install", kit / f"b-{v}.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    os.utime(root / "releases" / "1.0.0", (1, 1))  # installed first, so older on disk
    (root / "releases" / "notes.txt").write_text("a file left there is no release (once listed as DAMAGED)")
    (root / "state.json").write_text('{"history": [{"vers')
    r = run("device", "status", "--root", root, "--json")
    got = json.loads(r.stdout)
    assert r.exit_code == 0 and got["previous"] == "1.0.0" and "state.json is damaged" in got["warnings"][0]
    assert [x["version"] for x in got["releases"]] == ["1.0.0", "1.1.0"]
    r = run("device", "rollback", "--root", root)
    assert r.exit_code == 0 and (root / "current").resolve().name == "1.0.0", r.output
    assert (root / "state.json.damaged").read_text() == '{"history": [{"vers'
    r = run("device", "status", "--root", root, "--json")
    assert json.loads(r.stdout)["warnings"] == [] and json.loads(r.stdout)["previous"] == "1.1.0"
    (root / "state.json").write_text("[]")
    r = run("device", "install", kit / "b-1.2.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub")
    assert r.exit_code == 0 and "state.json is damaged" in r.output
    history = json.loads((root / "state.json").read_text())["history"]
    assert [h["version"] for h in history][-1] == "1.2.0" and len(history) == 3


def _empty_version_bundle(kit) -> Path:
    """A correctly signed bundle whose manifest has an empty version (the hostile trial's case)."""
    from agegate.convert.bundle import _load_private_key
    from agegate.edge.bundle_format import MANIFEST, SIGNATURE

    files = {k: v for k, v in members(kit / "b-1.1.0.tar.gz").items() if k not in (MANIFEST, SIGNATURE)}
    manifest = {**json.loads(members(kit / "b-1.1.0.tar.gz")[MANIFEST]), "version": ""}
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    out = kit / "b-empty.tar.gz"
    out.write_bytes(tar_bytes({**files, MANIFEST: body, SIGNATURE: _load_private_key(kit / "fleet.pem").sign(body)}))
    return out


def test_install_killed_at_random_points_never_breaks_current(kit, tmp_path):
    """Installs, rollbacks and the empty-version bundle, each killed at a random point."""
    root = tmp_path / "box"
    assert run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    rng = random.Random(0)
    empty = _empty_version_bundle(kit)
    ops = [["install", kit / "b-1.1.0.tar.gz"], ["rollback"], ["install", empty], ["install", kit / "b-1.2.0.tar.gz"],
           ["install", kit / "b-1.3.0.tar.gz"], ["rollback"], ["install", empty], ["install", kit / "b-1.1.0.tar.gz"]]
    for i, op in enumerate(ops):
        extra = ["--pub", str(kit / "fleet.pub")] if op[0] == "install" else []
        proc = subprocess.Popen([sys.executable, "-m", "agegate.edge", "device", *map(str, op), "--root", str(root),
                                 *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cur = (root / "current").resolve()
        assert cur.is_dir() and cur.parent == (root / "releases").resolve(), f"kill {i} ({op[0]}): no current"
        assert all(check_release(cur).values()), f"kill {i} ({op[0]}): current release incomplete"
        assert run("device", "status", "--root", root).exit_code == 0
    final = run("device", "install", kit / "b-1.3.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub")
    assert final.exit_code in (0, 1)  # 1 when an earlier, killed-late install already made it current
    assert all(check_release((root / "current").resolve()).values())


def test_doctor_checks_and_exit_codes(kit, tmp_path, shipped_model):
    from .conftest import write_video, pick

    root = tmp_path / "box"
    r = run("device", "doctor", "--root", root, "--json")
    assert r.exit_code == 1 and json.loads(r.output)["ok"] is False  # nothing installed
    assert run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub").exit_code == 0
    video = write_video(tmp_path / "cam.mp4", [([pick("test", 1, seed=3)[0]], 10)])
    cfg = tmp_path / "box.toml"
    cfg.write_text(f'[source]\nuri = "{video}"\n[model]\npath = "{root}/current/model.tflite"\n'
                   f'[events]\npath = "{tmp_path}/ev/events.sqlite"\n')
    r = run("device", "doctor", "--root", root, "--config", cfg)
    assert r.exit_code == 0, r.output
    for name in ("config", "model hash", "runtime", "inference", "camera", "events", "disk", "clock"):
        assert name in r.output
    assert "2 model runs per face (test-time views: mirror)" in r.output  # what the inference p50 pays for
    # decisions dated ahead of the clock: it ran ahead when they were made (or is behind now): said, not critical
    import time as _time

    from agegate.edge.events import Event, EventStore

    store = EventStore(tmp_path / "ev" / "events.sqlite")
    store.add(Event(_time.time() + 40 * 86400, "box-1", 1, 30.0, "25-34", 12, "ok", 5.0))
    store.close()
    r = run("device", "doctor", "--root", root, "--config", cfg, "--json")
    clock = next(c for c in json.loads(r.output)["checks"] if c["name"] == "clock")
    assert r.exit_code == 0 and not clock["ok"] and "1 decision(s) in events.sqlite are dated after tomorrow" \
        in clock["detail"] and "timedatectl" in clock["fix"]
    (root / "current" / "model.tflite").write_bytes(b"tampered")
    cfg.write_text(cfg.read_text() + "[bogus]\nx = 1\n")
    r = run("device", "doctor", "--root", root, "--config", cfg)
    assert r.exit_code == 1 and "unknown section [bogus]" in r.output and "fix:" in r.output


def test_install_service_dry_run(tmp_path):
    cfg = tmp_path / "etc" / "box.toml"
    cfg.parent.mkdir()
    cfg.write_text(f'[source]\nuri = "0"\n[model]\npath = "m.tflite"\n[events]\npath = "{tmp_path}/data/ev.sqlite"\n')
    r = run("device", "install-service", "--dry-run", "--config", cfg)
    assert r.exit_code == 0 and "ExecStart=" in r.output and f"edge run --config {cfg}" in r.output
    assert "Restart=on-failure" in r.output
    # the events folder of the config is writable under ProtectSystem=strict
    assert f"ReadWritePaths={tmp_path / 'data'}" in r.output
    unit = tmp_path / "agegate.service"
    unit.write_text("[Service]\n# edited by hand: Nice=5\n")  # a unit there before is kept, not lost
    r = run("device", "install-service", "--config", cfg, "--unit", unit)
    assert r.exit_code == 0 and "kept as" in r.output and "ExecStart=" in unit.read_text()
    assert (tmp_path / "agegate.service.previous").read_text() == "[Service]\n# edited by hand: Nice=5\n"
    r = run("device", "install-service", "--config", cfg, "--unit", unit)  # the same unit again: nothing to keep
    assert r.exit_code == 0 and "kept as" not in r.output
    # --json; a relative events.path is the config's folder's, as `edge run` reads it
    cfg.write_text('[source]\nuri = "0"\n[model]\npath = "m.tflite"\n[events]\npath = "data/ev.sqlite"\n')
    r = run("device", "install-service", "--config", cfg, "--unit", unit, "--writable", tmp_path / "x", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["written"] and d["writable"] == [str(tmp_path / "etc" / "data"), str(tmp_path / "x")]
    assert d["previous"] == str(unit) + ".previous" and f"ReadWritePaths={d['writable'][0]} " in unit.read_text()
    d = json.loads(run("device", "install-service", "--config", cfg, "--dry-run", "--json").stdout)
    assert not d["written"] and d["text"].startswith("[Unit]")


def test_install_service_refuses_a_missing_config(tmp_path):
    r = run("device", "install-service", "--dry-run", "--config", tmp_path / "nope.toml")
    assert r.exit_code == 1 and "nope.toml: config file not found" in r.output and "Traceback" not in r.output


def test_the_signing_key_is_created_private_not_narrowed_afterwards(tmp_path, monkeypatch):
    """keygen wrote the private key with the process's umask (world-readable under the usual 022) and only then
    narrowed it to 0600: another user could read the fleet's key in between. It is now created 0600. (With
    chmod disabled, the old order left it readable.)"""
    from pathlib import Path as P

    from agegate.convert.bundle import keygen

    monkeypatch.setattr(P, "chmod", lambda self, mode: None)
    old = os.umask(0o022)
    try:
        priv, pub = keygen(tmp_path / "fleet")
    finally:
        os.umask(old)
    assert priv.stat().st_mode & 0o777 == 0o600 and pub.exists()


def test_keygen_json_names_both_files_and_never_overwrites_a_key(tmp_path):
    r = CliRunner().invoke(cli, ["bundle", "keygen", "--out", str(tmp_path / "k"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d == {"ok": True, "private_key": str(tmp_path / "k.pem"), "public_key": str(tmp_path / "k.pub")}
    key = (tmp_path / "k.pem").read_bytes()
    r = CliRunner().invoke(cli, ["bundle", "keygen", "--out", str(tmp_path / "k"), "--json"])
    assert r.exit_code != 0 and "refusing to overwrite a signing key" in r.output
    assert (tmp_path / "k.pem").read_bytes() == key


def test_doctor_says_when_the_running_box_runs_another_model_than_installed(kit, tmp_path, shipped_model):
    """An install or rollback changes the file; a running box keeps the model it loaded, and nothing said so:
    install and rollback now say to restart, /healthz names the model it runs, and doctor compares the two."""
    from agegate.edge.api import make_server, serve_in_background
    from agegate.edge.pipeline import BoxOptions, BoxPipeline
    from agegate.edge.runtime import AgeModel

    from .conftest import portrait_video

    root = tmp_path / "box"
    r = run("device", "install", kit / "b-1.0.0.tar.gz", "--root", root, "--pub", kit / "fleet.pub")
    assert r.exit_code == 0 and "restart it to use this one" in r.output
    server = make_server(BoxPipeline(AgeModel(shipped_model), BoxOptions()), "127.0.0.1", 0)  # the box, running
    serve_in_background(server)
    try:
        video = portrait_video(tmp_path / "cam.mp4", frames=5)
        cfg = tmp_path / "box.toml"
        body = (f'[source]\nuri = "{video}"\n[events]\npath = "{tmp_path}/ev.sqlite"\n'
                f'[api]\nport = {server.server_address[1]}\n[model]\npath = ')
        cfg.write_text(body + f'"{root}/current/model.tflite"\n')
        r = run("device", "doctor", "--root", root, "--config", cfg)
        assert "[warn] running" in r.output and "m 1.0.0:" in r.output and "systemctl restart" in r.output, r.output
        cfg.write_text(body + f'"{shipped_model}"\n')
        r = run("device", "doctor", "--root", root, "--config", cfg)
        assert "[ok  ] running" in r.output and "default_model.tflite:" in r.output, r.output
    finally:
        server.shutdown()
