"""The box config: one typed tree (`BoxConfig`) read from box.toml, overridden by CLI flags, validated
in one place, and turned into the runtime options by one function (`runtime_plan`).

Every key has one default (the dataclass field) and one check (its `_setting` range or choices),
whether it comes from box.toml or a flag, so a negative `id_threshold` is refused the same way
from both, and a documented key that does nothing fails a test (tests/test_box_config.py).

Every key, its default, range and what it does: `agegate device config` writes them as a commented box.toml
(`example_toml`), from the dataclasses below and nothing else. Only source.uri and model.path must be given.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import textwrap
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .contracts import CHALLENGE_AGE, MINOR_AGE, THREADS_RANGE
from .errors import ConfigError


def _setting(default: Any, lo: float | None = None, hi: float | None = None, choices: tuple = (),
             flag: str = "", doc: str = "") -> Any:
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices, "flag": flag, "doc": doc})


@dataclass(frozen=True)
class BoxSection:
    """Who this box is: every event row carries these ids, and the fleet report groups by them."""
    id: str = _setting("box-1", flag="--box-id", doc="this box's id in events")
    store: str = _setting("", doc="the store's id, in every event row (fleet reports group by it)")
    till: str = _setting("", doc="the till's id within the store, in every event row")


@dataclass(frozen=True)
class SourceSection:
    """The camera: what the box reads frames from, and the mode it asks of it."""
    uri: str | None = _setting(None, flag="--source", doc="camera index, /dev/videoN, video file, image folder, "
                               "rtsp:// or http:// URL")
    width: int | None = _setting(None, 16, 8192, doc="frame width asked of the camera (unset: its own)")
    height: int | None = _setting(None, 16, 8192, doc="frame height asked of the camera (unset: its own)")
    fps: float | None = _setting(None, 0.5, 240, doc="frames per second asked of the camera (unset: its own)")
    rotate: int = _setting(0, choices=(0, 90, 180, 270), flag="--rotate",
                           doc="degrees clockwise every frame is turned before the box looks at it: a camera mounted "
                           "on its side (90 or 270) or upside down (180); the set-up view says when faces lie on "
                           "their side")


@dataclass(frozen=True)
class ModelSection:
    """The age model: the installed release's file, and the CPU it may use."""
    path: str | None = _setting(None, flag="--model", doc="a .tflite with its .json sidecar (an installed release's: "
                                "ROOT/current/model.tflite; edge run without one: the shipped model)")
    threads: int = _setting(2, *THREADS_RANGE, flag="--threads", doc="LiteRT threads per model run")
    latency_budget_ms: float | None = _setting(None, 0.1, 10_000, doc="p50 inference budget per face")


@dataclass(frozen=True)
class DetectorSection:
    """How faces are found in a frame (one of the decision settings an operating point is chosen with)."""
    name: str = _setting("blazeface-short", choices=("blazeface-short", "blazeface-full", "haar"), flag="--detector",
                         doc="face detector: BlazeFace's short-range model suits a till camera within 2 m")
    min_face: int = _setting(40, 8, 4096, doc="pixels; smaller faces are ignored")
    min_score: float = _setting(0.5, 0.05, 0.99, doc="BlazeFace detection score")
    every: int = _setting(1, 1, 30, doc="detect on every k-th frame; faces are carried in between")
    refine_below: float = _setting(0.2, 0.0, 1.0, doc="a face narrower than this share of the frame is detected "
                                   "again around it at full resolution (0: never)")
    small_face_score: float = _setting(0.35, 0.05, 0.99, doc="a face under refine_below is kept from this score "
                                       "if the closer look finds it at min_score (min_score or above: off)")
    refine_margin: float = _setting(1.0, 1.0, 2.0, doc="a first box up to this times the refine_below line is "
                                    "looked at again too, and kept as the closer look frames it when that is under "
                                    "the line (1: off; measured, not kept: MODEL_HISTORY.md)")


@dataclass(frozen=True)
class QualitySection:
    """Which frames of a found face the box ages (BoxOptions holds why each default is what it is). Each is one of
    the decision settings an operating point is chosen with: `device doctor` and `edge run` say when a box.toml
    sets one otherwise (a store lit from above may shade the eyes under min_eye_light: /setup shows the value)."""
    min_quality_face: int = _setting(48, 8, 4096, doc="px: a smaller face is followed but not aged (face_too_small)")
    min_sharpness: float = _setting(10.0, 0.0, 10_000, doc="variance of the Laplacian of the face crop: below it "
                                    "the frame is blurred (0: never)")
    min_eye_light: float = _setting(0.3, 0.0, 1.0, doc="eyes darker than this share of the skin are behind dark "
                                    "glasses: eyes_hidden (0: never checked)")


@dataclass(frozen=True)
class DecisionSection:
    """When a buyer is decided, and on what evidence (decision settings an operating point is chosen with)."""
    # Below MINOR_AGE a threshold would let minors buy alcohol without being asked: refused.
    id_threshold: float = _setting(CHALLENGE_AGE, MINOR_AGE, 100, flag="--id-threshold",
                                   doc="ask for ID below this fused age: the line of a regression model or one not "
                                   "calibrated (a calibrated model decides by its operating point)")
    min_frames: int = _setting(5, 1, 1000, doc="fewer aged frames than this: the buyer is uncertain")
    decide_after: int = _setting(10, 1, 1000, doc="aged frames before the box decides (at least min_frames)")
    max_spread: float = _setting(12.0, 0.5, 100, doc="years: frames that disagree more than this leave the buyer "
                                 "uncertain")


@dataclass(frozen=True)
class EventsSection:
    """Where decisions are kept (never an image), and for how long."""
    path: str = _setting("events.sqlite", flag="--events", doc="the SQLite events file")
    retention_days: float = _setting(90, 1, 3650, doc="events older than this many days are deleted")


@dataclass(frozen=True)
class ApiSection:
    """The HTTP endpoint the till reads decisions from (/decision, /last, /healthz) and the /setup page."""
    enabled: bool = _setting(True, flag="--no-api", doc="serve the endpoint")
    host: str = _setting("127.0.0.1", flag="--host", doc="address to serve on (beyond this machine: set token too)")
    port: int = _setting(8765, 0, 65535, flag="--port", doc="0 picks a free port")
    token: str = _setting("", flag="--token", doc="bearer token every request must carry")


@dataclass(frozen=True)
class BoxConfig:
    box: BoxSection = field(default_factory=BoxSection)
    source: SourceSection = field(default_factory=SourceSection)
    model: ModelSection = field(default_factory=ModelSection)
    detector: DetectorSection = field(default_factory=DetectorSection)
    quality: QualitySection = field(default_factory=QualitySection)
    decision: DecisionSection = field(default_factory=DecisionSection)
    events: EventsSection = field(default_factory=EventsSection)
    api: ApiSection = field(default_factory=ApiSection)

    def override(self, values: dict[str, Any], origin: str = "command line") -> "BoxConfig":
        """A copy with `{"section.key": value}` set (None values are skipped), each value checked."""
        cfg = self
        for dotted, value in values.items():
            if value is None:
                continue
            section, key = dotted.split(".")
            checked = _check(section, key, value, origin)
            cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{key: checked})})
        _check_together(cfg, origin)
        return cfg

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


#: Keys a box.toml must give (a box without a camera or a model is not configured).
REQUIRED = (("source", "uri"), ("model", "path"))


def sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(BoxConfig)}  # type: ignore[misc]


def settings(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(sections()[section])}


def bounds(section: str, key: str) -> tuple[float, float]:
    """The range box.toml allows for `section.key` (a command line offering the same setting says the same)."""
    meta = settings(section)[key].metadata
    return meta["lo"], meta["hi"]


def _label(section: str, key: str, origin: str) -> str:
    flag = settings(section)[key].metadata["flag"]
    return f"{flag} ({section}.{key})" if origin == "command line" and flag else f"{section}.{key}"


def _check(section: str, key: str, value: Any, origin: str) -> Any:
    if section not in sections():
        raise ConfigError(f"{origin}: unknown section [{section}]; known: {', '.join(sections())}")
    known = settings(section)
    if key not in known:
        raise ConfigError(f"{origin}: unknown key {section}.{key}; known: {', '.join(known)}")
    meta = known[key].metadata
    hint = typing.get_type_hints(sections()[section])[key]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    allowed = tuple(t for t in allowed if t is not type(None))
    name = _label(section, key, origin)
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if str in allowed and int not in allowed and float not in allowed and isinstance(value, int) \
            and not isinstance(value, bool):
        value = str(value)  # a camera index, a till's number: text written as a number
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        names = " or ".join(t.__name__ for t in allowed)
        raise ConfigError(f"{origin}: {name} must be {names}, not {type(value).__name__} ({value!r})")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{origin}: {name} must be one of {', '.join(map(str, meta['choices']))}, "
                          f"not {value!r}")
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and not (lo <= value <= hi):
        why = " (a lower threshold lets minors buy without ID)" if (section, key) == ("decision", "id_threshold") \
            else ""
        raise ConfigError(f"{origin}: {name} = {value!r} is outside {lo:g}..{hi:g}{why}")
    return value


def _check_together(cfg: BoxConfig, origin: str) -> None:
    """Settings that are each in range but do not work together: the box's own rule (BoxOptions), named as
    box.toml names it."""
    problem = runtime_plan(cfg).box.evidence_problem()
    if problem:
        raise ConfigError(f"{origin}: decision.{problem}")
    if cfg.api.enabled and not cfg.api.token and not _loopback(cfg.api.host):
        raise ConfigError(f"{origin}: api.host = {cfg.api.host!r} without api.token serves the till's answers and the "
                          f"live camera view (/setup) to anyone who can reach this box: set api.token (--token) "
                          f"too, or keep api.host on 127.0.0.1")


def _loopback(host: str) -> bool:
    """Whether an address is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def validate(raw: dict[str, Any], origin: str = "config") -> BoxConfig:
    """A parsed box.toml -> BoxConfig; ConfigError names the file and `section.key`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: not a TOML table")
    for section, body in raw.items():
        if section not in sections():
            raise ConfigError(f"{origin}: unknown section [{section}]; known: {', '.join(sections())}")
        if not isinstance(body, dict):
            raise ConfigError(f"{origin}: {section} must be a table ([{section}])")
        for key in body:
            if key not in settings(section):
                raise ConfigError(f"{origin}: unknown key {section}.{key}; known: {', '.join(settings(section))}")
    for section, key in REQUIRED:
        if section not in raw:
            raise ConfigError(f"{origin}: missing section [{section}]")
        if key not in raw[section]:
            raise ConfigError(f"{origin}: missing required key {section}.{key}")
    return BoxConfig().override({f"{s}.{k}": v for s, body in raw.items() for k, v in body.items()}, origin)


def describe(section: str, key: str) -> str:
    """What `section.key` does and what it allows, in one sentence (the example box.toml's comment)."""
    f = settings(section)[key]
    meta = f.metadata
    allows = (f"one of {', '.join(map(str, meta['choices']))}" if meta["choices"]
              else f"{meta['lo']:g}..{meta['hi']:g}" if meta["lo"] is not None else "")
    parts = [meta["doc"]] + ([allows] if allows else []) + ([f"flag {meta['flag']}"] if meta["flag"] else [])
    return "; ".join(p for p in parts if p)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def example_toml(cfg: BoxConfig, given: Iterable[str], header: str = "") -> str:
    """A box.toml naming every section and key: the keys `given` ("section.key") set as `cfg` has them, every other
    key written commented out at its default, each under what it does and allows.

    Why commented out: a box.toml that spelled out every default would pin it, and the decision settings are the
    ones a model's operating point is chosen with, so a default a later release measures better would never reach
    that box and `device doctor` would flag it as set otherwise."""
    set_here = {tuple(k.split(".")) for k in given}
    lines = [f"# {line}" for line in header.splitlines()] + ([""] if header else [])
    for section, cls in sections().items():
        lines += textwrap.wrap(" ".join(cls.__doc__.split()), 116, initial_indent="# ", subsequent_indent="# ")
        lines.append(f"[{section}]")
        for key in settings(section):
            lines += textwrap.wrap(describe(section, key), 116, initial_indent="# ", subsequent_indent="#   ")
            value = getattr(getattr(cfg, section), key)
            if (section, key) in set_here:
                lines.append(f"{key} = {_toml_value(value)}")
            elif value is None:
                lines.append(f"# {key} = (unset)")
            else:
                lines.append(f"# {key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def load_config(path: str | Path) -> BoxConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the config ({e})") from e
    return parse_config(text, p)


def parse_config(text: str, path: Path) -> BoxConfig:
    """A box.toml's text as the box reads it from `path` (relative paths beside it): `device config` checks a file
    this way before it writes it."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    return _beside(validate(raw, str(path)), path.resolve().parent)


def _beside(cfg: BoxConfig, folder: Path) -> BoxConfig:
    """Relative paths in a box.toml (model, events, a video or folder source) name files beside it, wherever
    `edge run` or `device doctor` starts from: the service runs in the config's folder, and a check run from
    elsewhere once looked at other files than the box uses. Flags stay relative to where they are typed."""
    from .capture import remote_kind

    def near(path: str | None) -> str | None:
        return str(folder / path) if path and not Path(path).is_absolute() else path

    uri = cfg.source.uri
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, path=near(cfg.model.path)),
        events=dataclasses.replace(cfg.events, path=near(cfg.events.path)),
        source=dataclasses.replace(cfg.source, uri=uri if uri is None or remote_kind(str(uri)) else near(str(uri))))


@dataclass(frozen=True)
class BoxPlan:
    """What `edge run` starts, built from a BoxConfig by `runtime_plan` and nothing else."""

    source: str | None
    source_options: Any  # capture.SourceOptions
    model_path: str | None
    box: Any  # pipeline.BoxOptions
    events_path: str
    retention_days: float
    api: ApiSection


def runtime_plan(cfg: BoxConfig, sequence: bool = False) -> BoxPlan:
    """The one mapping from config keys (and `edge run --sequence`) to the box's runtime options (every
    key lands somewhere). A folder of photos, often tight crops, gets the photo detector profile."""
    from .capture import SourceOptions, source_kind
    from .decision import DecisionPolicy
    from .detect import DetectorOptions
    from .errors import AgegateError
    from .pipeline import BoxOptions

    try:
        photos = cfg.source.uri is not None and source_kind(str(cfg.source.uri)) == "folder"
    except AgegateError:  # not a source at all: FrameSource says so when the box starts
        photos = False
    det = dict(detector=cfg.detector.name, min_score=cfg.detector.min_score)
    d, q = cfg.decision, cfg.quality
    box = BoxOptions(box_id=cfg.box.id, store_id=cfg.box.store, till_id=cfg.box.till, threads=cfg.model.threads,
                     detector=DetectorOptions.for_photos(**det) if photos
                     else DetectorOptions(min_face=cfg.detector.min_face, refine_below=cfg.detector.refine_below,
                                          small_face_score=cfg.detector.small_face_score,
                                          refine_margin=cfg.detector.refine_margin, **det),
                     policy=DecisionPolicy(d.id_threshold, d.min_frames, d.max_spread), decide_after=d.decide_after,
                     latency_budget_ms=cfg.model.latency_budget_ms, detect_every=cfg.detector.every,
                     min_quality_face=q.min_quality_face, min_sharpness=q.min_sharpness, min_eye_light=q.min_eye_light)
    src = cfg.source
    return BoxPlan(src.uri, SourceOptions(width=src.width, height=src.height, fps=src.fps, sequence=sequence,
                                               rotate=src.rotate),
                   cfg.model.path, box, cfg.events.path, cfg.events.retention_days, cfg.api)


def camera_box(cfg: BoxConfig | None, threads: int):
    """The box whose decisions calibrate and qa replay buyers through: the decision settings of `cfg` (a store's
    box.toml: detector, quality, decision; None: the defaults), on camera frames whatever its source names (the
    replay makes a till camera's frames), at `threads`. An operating point chosen with it records those settings,
    so `device doctor` on that box finds nothing to flag."""
    from .pipeline import BoxOptions

    if cfg is None:
        return BoxOptions(threads=threads)
    return dataclasses.replace(runtime_plan(dataclasses.replace(cfg, source=SourceSection())).box, threads=threads)
