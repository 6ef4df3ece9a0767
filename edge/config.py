"""The box config (box.toml), validated against a schema with errors that name the key path.

Example:
    [box]
    id = "store-12-till-3"
    [source]
    uri = "0"            # camera index, /dev/videoN, file, folder, rtsp:// or http:// URL
    width = 640
    height = 480
    fps = 30
    [model]
    path = "/opt/agegate/current/model.tflite"
    threads = 2
    [detector]
    name = "blazeface-short"
    min_face = 40
    [decision]
    id_threshold = 25
    min_frames = 5
    [events]
    path = "/var/lib/agegate/events.sqlite"
    retention_days = 90
    [api]
    host = "127.0.0.1"
    port = 8765
    token = ""
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

# section -> key -> (type(s), default); a default of ... means required
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "box": {"id": ((str,), "box-1")},
    "source": {"uri": ((str, int), ...), "width": ((int,), None), "height": ((int,), None),
               "fps": ((int, float), None)},
    "model": {"path": ((str,), ...), "threads": ((int,), 2), "latency_budget_ms": ((int, float), None)},
    "detector": {"name": ((str,), "blazeface-short"), "min_face": ((int,), 40), "min_score": ((int, float), 0.5)},
    "decision": {"id_threshold": ((int, float), 25.0), "min_frames": ((int,), 5), "decide_after": ((int,), 10),
                 "max_spread": ((int, float), 12.0)},
    "events": {"path": ((str,), "events.sqlite"), "retention_days": ((int, float), 90)},
    "api": {"enabled": ((bool,), True), "host": ((str,), "127.0.0.1"), "port": ((int,), 8765), "token": ((str,), "")},
}
REQUIRED_SECTIONS = ("source", "model")


def validate(raw: dict[str, Any], origin: str = "config") -> dict[str, dict[str, Any]]:
    """Fill defaults and check types; raise ConfigError naming `section.key`."""
    out: dict[str, dict[str, Any]] = {}
    for section in raw:
        if section not in SCHEMA:
            raise ConfigError(f"{origin}: unknown section [{section}]; known: {', '.join(SCHEMA)}")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{origin}: {section} must be a table ([{section}])")
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if section in REQUIRED_SECTIONS and section not in raw:
            raise ConfigError(f"{origin}: missing section [{section}]")
        for key in given:
            if key not in keys:
                raise ConfigError(f"{origin}: unknown key {section}.{key}; known: {', '.join(keys)}")
        vals: dict[str, Any] = {}
        for key, (types, default) in keys.items():
            if key not in given:
                if default is ...:
                    raise ConfigError(f"{origin}: missing required key {section}.{key}")
                vals[key] = default
                continue
            v = given[key]
            if isinstance(v, bool) and bool not in types or not isinstance(v, types):
                names = " or ".join(t.__name__ for t in types)
                raise ConfigError(f"{origin}: {section}.{key} must be {names}, not {type(v).__name__} ({v!r})")
            vals[key] = v
        out[section] = vals
    if not 0 < out["api"]["port"] < 65536:
        raise ConfigError(f"{origin}: api.port {out['api']['port']} is not a TCP port")
    if out["model"]["threads"] < 1:
        raise ConfigError(f"{origin}: model.threads must be at least 1")
    return out


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from e
    return validate(raw, str(p))
