"""`agegate device install|rollback|status|doctor|config|install-service`: the field engineer's commands."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli_types import json_option
from .provision import DEFAULT_ROOT

_root = click.option("--root", default=str(DEFAULT_ROOT), show_default=True, type=click.Path(file_okay=False),
                     help="The box's agegate folder.")

#: A running box keeps the model it loaded: said after every install and rollback (doctor's `running` check
#: compares the running box's model with the installed one).
RESTART_HINT = ("a box already running keeps the model it loaded: restart it to use this one "
                "(systemctl restart agegate; `agegate device doctor --config box.toml` says which it runs)")

UNIT = """[Unit]
Description=agegate checkout age estimation
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
WorkingDirectory={workdir}
ExecStart={exe} edge run --config {config}
Restart=on-failure
RestartSec=3
KillSignal=SIGTERM
TimeoutStopSec=15
# The box keeps no images: events only. Harden the service.
NoNewPrivileges=true
ProtectSystem=strict
ReadWritePaths={writable}
PrivateTmp=true

[Install]
WantedBy=multi-user.target
"""


@click.group()
def device() -> None:
    """On the checkout box: install signed bundles, roll back, check health."""


@device.command()
@click.argument("bundle_path", type=click.Path(exists=True, dir_okay=False))
@_root
@click.option("--pub", type=click.Path(exists=True, dir_okay=False), help="[ROOT/trusted.pub]")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the error) as JSON.")
def install(bundle_path, root, pub, as_json):
    """Verify, unpack, smoke-test, then switch `current` atomically. Any failure changes nothing live."""
    from .provision import BoxRoot

    r = BoxRoot(root).install(bundle_path, pub, echo=lambda m: click.secho(m, fg="red", err=True))
    if as_json:
        click.echo(json.dumps({"ok": True, **r.to_json()}, indent=2))
        return
    click.echo(f"installed {r.version} (was {r.previous or 'none'}); smoke test: age "
               f"{r.smoke.age:.1f}, p50 {r.smoke.p50_ms:.2f} ms" + ("  [FORCED]" if r.forced else ""))
    click.echo(RESTART_HINT)


@device.command()
@_root
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the error) as JSON.")
def rollback(root, as_json):
    """Switch `current` back to the previous installed release.

    Only to an intact one; run again, it goes one release further back (never onto a release a rollback left).
    A running box keeps its model until restarted."""
    from .provision import BoxRoot

    r = BoxRoot(root).rollback(echo=lambda m: click.secho(m, fg="yellow", err=True))
    if as_json:
        click.echo(json.dumps({"ok": True, **r.to_json()}, indent=2))
        return
    click.echo(f"rolled back {r.previous} -> {r.version}")
    click.echo(RESTART_HINT)


@device.command()
@_root
@json_option
def status(root, as_json):
    """Current and previous versions, hashes, install times, and whether a forced bundle is live.

    Exit 1 when the live release is missing or damaged (the message says how to repair it).
    """
    from .provision import BoxRoot

    s = BoxRoot(root).status()
    if as_json:
        click.echo(json.dumps(s.to_json(), indent=2))
        sys.exit(0 if s.healthy else 1)
    click.echo(f"{s.root}: current {s.current or 'none'}, previous {s.previous or 'none'}"
               + ("  [FORCED MODEL LIVE]" if s.forced_live else ""))
    if s.current is None and not s.releases:  # a fresh box, or a mistyped --root: say which
        click.echo("  nothing installed here" + ("" if Path(root).is_dir() else
                   f" ({root} does not exist: is --root the folder the bundle was installed to?)")
                   + f"; install with `agegate device install BUNDLE --root {root}`")
    for r in s.releases:
        click.echo(f"  {'*' if r.current else ' '} {r.version:<24} sha {str(r.model_sha256)[:12]}  "
                   f"installed {r.installed}  {'intact' if r.intact else 'DAMAGED'}" + ("  FORCED" if r.forced else ""))
        if r.current and r.qa_data:
            mae = f" (MAE {r.qa_mae:.2f})" if r.qa_mae is not None else ""
            click.echo(f"      QA judged on {', '.join(r.qa_data)}{mae}")
    for w in s.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    for p in s.problems:
        click.secho(f"BROKEN: {p}", fg="red", err=True)
    sys.exit(0 if s.healthy else 1)


@device.command()
@_root
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="box.toml to validate and use.")
@json_option
def doctor(root, config_path, as_json):
    """Checklist: config, camera, runtime, model hash, inference and latency, disk, events, clock.

    Exit 1 when a critical check fails; each failure comes with a fix.
    """
    from .doctor import run_checks

    checks = run_checks(Path(root), Path(config_path) if config_path else None)
    failed = [c for c in checks if not c.ok and c.critical]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [c.__dict__ for c in checks]}, indent=2))
    else:
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.critical else "warn")
            click.echo(f"[{mark}] {c.name:<10} {c.detail}")
            if not c.ok and c.fix:
                click.echo(f"         fix: {c.fix}")
        click.echo("healthy" if not failed else f"{len(failed)} critical check(s) failed")
    sys.exit(1 if failed else 0)


def _write_keeping_previous(target: Path, text: str) -> Path | None:
    """Write `text` to `target` (its folder made) through a temporary file beside it, so a cut power leaves the old
    file or the new one; a different file there before is kept beside as NAME.previous, which is returned."""
    import os

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    previous = None
    if target.is_file() and target.read_text() != text:
        previous = target.with_name(target.name + ".previous")
        os.replace(target, previous)
    os.replace(tmp, target)
    return previous


CONFIG_HEADER = """box.toml for box {box}: read by `agegate edge run --config` and `agegate device doctor --config`.
Written by `agegate device config` (agegate {version}). Keys left commented out keep agegate's default, which a
later release may measure better: set only what this box needs. [detector], [quality] and [decision] are the
settings a model's operating point is chosen with: set one otherwise and `device doctor` says so, and
`agegate calibrate MODEL --config box.toml` chooses a point for this box. Relative paths name files beside this
file. Check it on the box: agegate device doctor --config box.toml"""


def _assignment(text: str) -> tuple[str, object]:
    """`section.key=value` -> ("section.key", value): the value read as TOML (25, 0.5, true, "a b"), a bare word
    as a string (store-12)."""
    import tomllib

    from .errors import UsageError

    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise UsageError(f"--set {text!r}: give SECTION.KEY=VALUE, e.g. --set box.store=store-12")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


@device.command("config")
@_root
@click.option("--source", default="0", show_default=True,
              help="The camera: index, /dev/videoN, video file, image folder, rtsp:// or http:// URL.")
@click.option("--set", "assignments", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Set another key (repeatable), e.g. --set box.store=store-12 --set box.till=3.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the file here (its folder is made) instead of "
              "printing it, e.g. /etc/agegate/box.toml (install-service's default).")
@click.option("--force", is_flag=True, help="Replace an existing --out (the old file is kept beside, .previous).")
@click.option("--json", "as_json", is_flag=True, help="Print every key (value, default, range, flag, what it "
              "does) as JSON.")
def config(root, source, assignments, out, force, as_json):
    """Write a box.toml: every key with its default, range and what it does.

    The camera (--source) and the model of the release `device install` puts under --root are set, and any key
    given with --set; every other key is written commented out at its default, so the box keeps agegate's defaults
    as they improve. The file is checked as `edge run` reads it before it is written.
    """
    from . import __version__
    from .config import REQUIRED, BoxConfig, example_toml, parse_config, sections, settings
    from .errors import UsageError

    values = {"source.uri": source, "model.path": str(Path(root).resolve() / "current" / "model.tflite")}
    values.update(_assignment(a) for a in assignments)
    cfg = BoxConfig().override(values, "--set")  # ConfigError names a bad key or value
    text = example_toml(cfg, values, CONFIG_HEADER.format(box=cfg.box.id, version=__version__))
    if as_json:
        keys = [{"key": f"{s}.{k}", "value": getattr(getattr(cfg, s), k), "set": f"{s}.{k}" in values,
                 "default": f.default, "required": (s, k) in REQUIRED, "min": f.metadata["lo"],
                 "max": f.metadata["hi"], "choices": list(f.metadata["choices"]) or None,
                 "flag": f.metadata["flag"] or None, "doc": f.metadata["doc"]}
                for s in sections() for k, f in settings(s).items()]
        click.echo(json.dumps({"ok": True, "out": out, "keys": keys}, indent=2))
    if out is None:
        if not as_json:
            click.echo(text)
        return
    target = Path(out)
    if target.exists() and not force:
        raise UsageError(f"{target} exists: pass --force to replace it (the old file is kept as "
                         f"{target.name}.previous), or --out another file")
    written = parse_config(text, target)  # as the box will read it there (relative paths beside it)
    _write_keeping_previous(target, text)
    if not as_json:
        click.echo(f"wrote {target}: source {written.source.uri}, model {written.model.path}"
                   + (f", {len(assignments)} more key(s) set" if assignments else "")
                   + f"; check it with `agegate device doctor --config {target}`")


@device.command("install-service")
@click.option("--config", "config_path", default="/etc/agegate/box.toml", show_default=True,
              help="The box.toml the service runs (validated first).")
@click.option("--unit", default="/etc/systemd/system/agegate.service", show_default=True,
              type=click.Path(dir_okay=False), help="The systemd unit file to write.")
@click.option("--writable", multiple=True, help="More folders the service may write (ProtectSystem=strict); the "
              "folder of the config's events.path is always included.")
@click.option("--dry-run", is_flag=True, help="Print the unit instead of writing it.")
@click.option("--json", "as_json", is_flag=True, help="Print the unit's path, what it runs and the folders it may "
              "write as JSON (with --dry-run, the unit's text too).")
def install_service(config_path, unit, writable, dry_run, as_json):
    """Write a systemd unit that runs `agegate edge run` and restarts it on failure.

    The config is validated first: a unit that points at a missing or broken box.toml
    would only fail later, in a restart loop.
    """
    import shutil as sh

    from .config import load_config

    cfg = load_config(config_path)  # ConfigError (exit 1) names the file and key
    config_abs = Path(config_path).resolve()
    events_dir = Path(cfg.events.path).resolve().parent  # load_config made a relative path the config's folder's
    paths = [str(events_dir)] + [str(Path(w).resolve()) for w in writable if str(Path(w).resolve()) != str(events_dir)]
    exe = sh.which("agegate") or f"{sys.executable} -m agegate.edge"
    text = UNIT.format(exe=exe, config=config_abs, writable=" ".join(paths), workdir=config_abs.parent)
    said = {"ok": True, "unit": str(unit), "written": not dry_run, "config": str(config_abs), "exec": exe,
            "writable": paths}
    if dry_run:
        click.echo(json.dumps({**said, "text": text}, indent=2) if as_json else text)
        return
    previous = _write_keeping_previous(Path(unit), text)  # an earlier unit, perhaps edited by hand: kept beside
    if as_json:
        click.echo(json.dumps({**said, "previous": previous and str(previous)}, indent=2))
        return
    kept = f" (the unit there before kept as {previous})" if previous else ""
    click.echo(f"wrote {unit}{kept}; now: systemctl daemon-reload && systemctl enable --now agegate")
