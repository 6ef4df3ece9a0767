"""`agegate device doctor`: one checklist an engineer on site can read, with a fix for each failure."""
from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .contracts import CHALLENGE_AGE, CLOCK_FLOOR
from .errors import AgegateError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    critical: bool = True


def run_checks(root: Path, config_path: Path | None, camera_timeout: float = 5.0) -> list[Check]:
    from .config import load_config
    from .provision import BoxRoot

    checks: list[Check] = []
    cfg = None
    if config_path is not None:
        try:
            cfg = load_config(config_path)
            checks.append(Check("config", True, f"{config_path} is valid"))
        except AgegateError as e:
            checks.append(Check("config", False, str(e), "fix the named key in box.toml (`agegate device "
                                                          "config` writes every key with its range)"))
    box = BoxRoot(root)
    status = box.status()  # the releases, the problems and the history's warnings, read once
    cur, broken = status.current, status.problems
    release = box.current.resolve() if cur else None
    if cur is None or broken:
        checks.append(Check("release", False, broken[0] if broken else f"no current release under {root}",
                            "" if broken else f"agegate device install BUNDLE --root {root}"))
        release = None
    else:  # not broken: status found every file of the live release as its manifest has it
        checks.append(Check("model hash", True, f"{cur}: every file matches the manifest"))
        checks.append(Check("qa", not status.forced_live, "live release passed QA" if not status.forced_live else
                            "live release is FORCED (failed QA)", "install a QA-passed bundle", critical=False))
        if status.warnings:
            checks.append(Check("history", False, "; ".join(status.warnings),
                                "none by hand (the box serves as before)", critical=False))
    try:
        from .runtime import interpreter_class, runtime_version

        _, name = interpreter_class()
        checks.append(Check("runtime", True, f"{name} {runtime_version(name)}"))
    except AgegateError as e:
        checks.append(Check("runtime", False, str(e), "pip install ai-edge-litert"))
    if release is not None:
        try:
            from .provision import smoke_test

            s = smoke_test(release)
            # box.toml's model.latency_budget_ms (this box's own) wins over the bundle's
            budget = cfg.model.latency_budget_ms if cfg is not None and cfg.model.latency_budget_ms else s.budget_ms
            within = budget is None or s.p50_ms <= budget
            checks.append(Check("inference", within, f"age {s.age:.1f} for the embedded face, p50 {s.p50_ms:.2f} ms"
                                + (f" (budget {budget:g} ms)" if budget else "")
                                + f"; {s.runs_per_face} model run{'s' if s.runs_per_face > 1 else ''} per face"
                                + (f" (test-time views: {s.views})" if s.runs_per_face > 1 else ""),
                                "check CPU load and threads (model.threads), or install a faster model"))
        except AgegateError as e:
            checks.append(Check("inference", False, str(e), "reinstall or roll back the model"))
        checks.append(_decision_rule(release, cfg))
    if cfg is not None:
        checks.append(_camera(str(cfg.source.uri), camera_timeout, cfg.source.rotate))
        checks.append(_events(Path(cfg.events.path)))
        if (running := _running_model(cfg)) is not None:
            checks.append(running)
    usage = shutil.disk_usage(root if root.exists() else root.parent)
    free_mb = usage.free / 2**20
    checks.append(Check("disk", free_mb > 200, f"{free_mb:.0f} MiB free under {root}",
                        "free space: old releases are pruned to 3; check logs and recordings"))
    checks.append(_clock(Path(cfg.events.path) if cfg is not None else None))
    return checks


def _clock(events: Path | None) -> Check:
    """The box's clock: set (after CLOCK_FLOOR), and not behind the decisions the box has written (a row dated
    more than a day ahead was made while the clock ran ahead, or the clock is behind now; the fleet report leaves
    such rows out, and the box's own counts put them on days they did not happen)."""
    now = time.time()
    said = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    fix = "enable NTP (timedatectl set-ntp true); decisions made before it is set are held and timed once it is"
    if not (CLOCK_FLOOR <= now and time.gmtime(now).tm_year <= 2100):
        return Check("clock", False, said, fix, critical=False)
    ahead = None
    if events is not None and events.is_file():
        try:
            db = sqlite3.connect(f"file:{events}?mode=ro", uri=True)
            try:
                ahead = db.execute("SELECT count(*), max(ts) FROM events WHERE ts > ?", (now + 86400,)).fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            pass  # the events check says what is wrong with the file
    if ahead and ahead[0]:
        newest = time.strftime("%Y-%m-%d", time.gmtime(ahead[1]))
        return Check("clock", False, f"{said}, but {ahead[0]} decision(s) in {events.name} are dated after tomorrow "
                     f"(the newest {newest}): the clock ran ahead when they were made, or is behind now; the fleet "
                     f"report leaves them out", "check the time server (timedatectl timesync-status) and set the "
                     "clock right", critical=False)
    return Check("clock", True, said)


def _decision_rule(release: Path, cfg) -> Check:
    """How this box decides Challenge 25: a distribution model's operating point (with what it cost
    where it was chosen), or a regression model's age threshold."""
    from .challenge25 import settings_mismatch
    from .config import runtime_plan
    from .contracts import RELEASE_MODEL
    from .metadata import read_metadata

    try:
        meta = read_metadata(release / RELEASE_MODEL)
    except AgegateError as e:
        return Check("challenge 25", False, str(e), "reinstall or roll back the model")
    op = meta.operating_point
    if meta.head.is_distribution and op is not None:
        from .pipeline import BoxOptions, unused_threshold

        box = runtime_plan(cfg).box if cfg is not None else BoxOptions()
        mismatch = settings_mismatch(op, box.decision_rules())
        unused = unused_threshold(meta, box)
        return Check("challenge 25", not mismatch and not unused, op.describe()
                     + (" [LOOSER than the default targets]" if op.looser_than_default else "")
                     + (f"; {mismatch}" if mismatch else "") + (f"; {unused}" if unused else ""),
                     "recalibrate a copy of the model for this box's decision settings (agegate calibrate "
                     "--config box.toml) and ship it as a new bundle, or set them back in box.toml", critical=False)
    threshold = cfg.decision.id_threshold if cfg is not None else CHALLENGE_AGE
    note = " (a distribution model not calibrated yet: run `agegate calibrate`)" if meta.head.is_distribution else ""
    return Check("challenge 25", not meta.head.is_distribution, f"ID check when the fused age is under {threshold:g}"
                 + note, "calibrate the model and rebuild the bundle", critical=False)


def _camera(uri: str, timeout: float, rotate: int = 0) -> Check:
    from .capture import FrameSource, SourceOptions

    try:
        src = FrameSource(uri, SourceOptions(retry_forever=False, open_timeout_tries=2, backoff_start=0.2,
                                             rotate=rotate))
    except AgegateError as e:
        return Check("camera", False, str(e), "check source.uri in box.toml and the cable / stream URL")
    try:
        frame = src.read(timeout=timeout)
        if frame is None:
            return Check("camera", False, f"{src.shown}: no frame within {timeout:.0f}s ({src.error or 'no error'})",
                         "check the camera cable, power and /dev/video permissions")
        h, w = frame.rgb.shape[:2]
        turn = f", turned {rotate} degrees (source.rotate)" if rotate else ""
        return Check("camera", True, f"{src.shown}: frames arrive ({w}x{h}{turn})")
    finally:
        src.close()


def _running_model(cfg) -> Check | None:
    """Whether the box running now (its /healthz) runs the model its config names: an install or rollback
    changes the file, and a running box keeps the model it loaded until it is restarted. None when no box
    answers (not running, or its API is off) or it is one that does not say which model it runs."""
    import json
    import urllib.error
    import urllib.request

    from .metadata import read_metadata
    from .runtime import model_label

    if not cfg.api.enabled:
        return None
    host = "127.0.0.1" if cfg.api.host in ("0.0.0.0", "::", "") else cfg.api.host
    req = urllib.request.Request(f"http://{host}:{cfg.api.port}/healthz",
                                 headers={"Authorization": f"Bearer {cfg.api.token}"} if cfg.api.token else {})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            health = json.loads(r.read())
    except urllib.error.HTTPError as e:  # 503: degraded, but it says which model it runs
        try:
            health = json.loads(e.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    running = health.get("model_label") if isinstance(health, dict) else None
    if running is None:
        return None
    try:
        expected = model_label(Path(cfg.model.path), read_metadata(cfg.model.path))
    except (AgegateError, OSError):
        return None  # the model check above says what is wrong with the file
    return Check("running", running == expected, f"the box on {host}:{cfg.api.port} runs {running}"
                 + ("" if running == expected else f"; {cfg.model.path} is now {expected}"),
                 "restart it to load the installed model: systemctl restart agegate", critical=False)


def _events(path: Path) -> Check:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path))
        db.execute("CREATE TABLE IF NOT EXISTS _doctor (x)")
        db.execute("DROP TABLE _doctor")
        db.close()
        return Check("events", True, f"{path} is writable")
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError):
            return Check("events", False, f"{path}: {e}", "check the folder's permissions and free space")
        return Check("events", False, f"{path} is damaged ({e})", "none by hand: the box keeps it aside and starts "
                     f"a new one when it starts (`sqlite3 {path} .recover` may rescue its rows)", critical=False)
    except OSError as e:
        return Check("events", False, f"{path}: {e}", "check the folder's permissions and free space")
