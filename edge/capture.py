"""Frame capture in its own thread, through OpenCV.

Sources: a camera index or /dev/videoN, a video file, a folder of images, an
rtsp:// or http:// (MJPEG) stream. Live sources (camera, stream) keep a one-slot
queue where the newest frame wins, so inference never blocks capture and a slow
model sees fresh frames; when a live source fails it reconnects with exponential
backoff and keeps running. Files and folders are read in full, frame by frame.
"""
from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import AgegateError
from .contracts import IMAGE_EXTS
from .preprocess import decode_image

log = logging.getLogger("agegate.edge")


@dataclass
class Frame:
    index: int
    ts: float  # wall clock at capture: what decisions are dated by
    rgb: np.ndarray
    cut: bool = False  # the scene changed here (a new photo of a folder): earlier buyers are gone
    # Steady clock at capture (time.monotonic; a replay gives its own timeline), for every duration the box
    # measures: how long a buyer has stood there, how long ago a decision was. NTP setting the wall clock
    # forward an hour split a buyer standing at the till; set back, it made an hour-old decision look fresh.
    steady: float = field(default_factory=time.monotonic)


@dataclass
class SourceOptions:
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sequence: bool = False  # folder of images: the frames of one video (one buyer may span images)
    rotate: int = 0  # degrees clockwise each frame is turned (box.toml source.rotate): a camera on its side
    backoff_start: float = 0.5
    backoff_max: float = 10.0
    retry_forever: bool = True  # live sources: keep reconnecting (service mode)
    open_timeout_tries: int = 3  # live sources without retry_forever: give up after this many failed opens


#: cv2.rotate's code for each quarter turn clockwise (0: the frame as the camera gives it).
_QUARTER_TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def turned(image: np.ndarray, degrees: int) -> np.ndarray:
    """`image` turned `degrees` clockwise (0, 90, 180 or 270). A camera mounted on its side gives faces lying on
    their side, which the face detector finds weakly and wrongly placed (the demo's two buyers turned 90 degrees: four
    tracks, both ages 5 years off) or, upside down, not at all; turning the frame first gives the box the picture it
    was made for, whatever the mount."""
    if degrees == 0:
        return image
    if degrees not in _QUARTER_TURNS:
        raise ValueError(f"a frame turns by 0, 90, 180 or 270 degrees, not {degrees}")
    return cv2.rotate(image, _QUARTER_TURNS[degrees])


def remote_kind(source: str) -> str | None:
    """'camera' or 'stream' for a source that is no file on this disk (a camera index, /dev/videoN, a URL),
    None for a path."""
    s = str(source)
    if s.isdigit() or s.startswith("/dev/video"):
        return "camera"
    if s.startswith(("rtsp://", "http://", "https://")):
        return "stream"
    return None


_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", re.IGNORECASE)


def shown_source(source: str) -> str:
    """The source as logs, errors, /healthz and doctor show it: a stream URL's password replaced by ***
    (`rtsp://admin:***@10.0.0.5/stream`). Cameras take their credentials in the URL, and the journal, a
    health check's JSON and a pasted doctor report are read by more people than box.toml."""
    return _CREDENTIALS.sub(r"\1:***@", str(source))


def source_kind(source: str) -> str:
    s = str(source)
    if kind := remote_kind(s):
        return kind
    p = Path(s)
    if p.is_dir():
        return "folder"
    if p.is_file():
        return "file"
    raise AgegateError(f"source {shown_source(s)!r}: not a camera index, /dev/videoN, stream URL, folder or video "
                       f"file")


def folder_images(folder: str | Path) -> list[Path]:
    """The images a folder source shows, in name order."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)


def check_source(source: str) -> None:
    """Fail now, with the reason, for a source that can never give a frame: not a source at all, a folder without
    images, a file OpenCV cannot read. A camera or stream is not opened here (the box keeps retrying those)."""
    kind = source_kind(source)
    if kind == "folder":
        if not folder_images(source):
            raise AgegateError(f"source {source}: folder holds no images")
    elif kind == "file":
        cap = cv2.VideoCapture(source)
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if not ok:
            raise AgegateError(f"source {source}: OpenCV cannot read this video file")


class FrameSource:
    """Iterate frames (`for frame in source`) or `read(timeout)`; `close()` releases the device."""

    def __init__(self, source: str, options: SourceOptions | None = None):
        self.source = str(source)
        self.shown = shown_source(self.source)  # what logs and errors say (no password)
        self.options = options or SourceOptions()
        self.kind = source_kind(self.source)
        self.live = self.kind in ("camera", "stream")
        self._q: queue.Queue = queue.Queue(maxsize=1 if self.live else 8)
        self._stop = threading.Event()
        self.frames_read = 0
        self.dropped = 0
        self.reconnects = 0  # live sources: every open attempt after the first, failed or not
        self.connected = not self.live  # live: True while a device/stream is open
        self.error: str | None = None
        self.skipped: list[str] = []  # folder images that could not be read, with the reason
        self._cap = None
        if not self.live:
            check_source(self.source)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    @property
    def photos(self) -> bool:
        """A folder of unrelated photos: each is its own buyer (not the frames of one video)."""
        return self.kind == "folder" and not self.options.sequence

    # -- opening ------------------------------------------------------------------------------
    def _open_live(self, quiet: bool = False):
        """The camera or stream opened, or None. `quiet`: OpenCV's own warnings held back (a retry: the first
        try's were shown, and a box retrying every 10 s for an unplugged camera repeated them all day)."""
        target: int | str = int(self.source) if self.source.isdigit() else self.source
        level = cv2.utils.logging.getLogLevel()
        if quiet:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            cap = cv2.VideoCapture(target)
        finally:
            cv2.utils.logging.setLogLevel(level)
        o = self.options
        if cap.isOpened():
            if o.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, o.width)
            if o.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, o.height)
            if o.fps:
                cap.set(cv2.CAP_PROP_FPS, o.fps)
            return cap
        cap.release()
        return None

    # -- the capture thread -------------------------------------------------------------------
    def _put(self, bgr_or_rgb: np.ndarray, is_bgr: bool = True, cut: bool = False) -> None:
        rgb = turned(cv2.cvtColor(bgr_or_rgb, cv2.COLOR_BGR2RGB) if is_bgr else bgr_or_rgb, self.options.rotate)
        frame = Frame(self.frames_read, time.time(), rgb, cut)
        self.frames_read += 1
        if self.live:
            try:
                self._q.put_nowait(frame)
            except queue.Full:
                try:
                    self._q.get_nowait()  # the newest frame wins
                    self.dropped += 1
                except queue.Empty:
                    pass
                self._q.put_nowait(frame)
        else:
            while not self._stop.is_set():
                try:
                    self._q.put(frame, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _run(self) -> None:
        try:
            if self.kind == "folder":
                for p in folder_images(self.source):
                    if self._stop.is_set():
                        break
                    try:
                        img = decode_image(p)
                    except AgegateError as e:
                        log.warning("skipping %s", e)
                        self.skipped.append(str(e))
                        continue
                    # unrelated photos: each is its own buyer (a cut before it), unless a video's frames
                    self._put(img, is_bgr=False, cut=not self.options.sequence)
            elif self.kind == "file":
                cap = cv2.VideoCapture(self.source)
                self._cap = cap
                while not self._stop.is_set():
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    self._put(bgr)
                cap.release()
            else:
                self._run_live()
        except Exception as e:  # noqa: BLE001 - reported to the consumer, not lost in a thread
            self.error = f"capture failed: {e}"
            log.exception("capture thread failed")
        finally:
            self._put_end()

    def _put_end(self) -> None:
        """Signal the end of frames, even when the queue is full (never lose it)."""
        while True:
            try:
                self._q.put(None, timeout=0.1)
                return
            except queue.Full:
                if self.live or self._stop.is_set():
                    try:
                        self._q.get_nowait()
                    except queue.Empty:
                        pass

    def _run_live(self) -> None:
        delay, failures, attempts = self.options.backoff_start, 0, 0
        while not self._stop.is_set():
            if attempts:
                self.reconnects += 1
            attempts += 1
            cap = self._open_live(quiet=failures > 0)
            if cap is None:
                failures += 1
                self.error = f"source {self.shown} does not open ({failures} failed tries)"
                if not self.options.retry_forever and failures >= self.options.open_timeout_tries:
                    self.error = f"source {self.shown}: cannot open after {failures} tries"
                    return
                log.warning("source %s does not open; retrying in %.1fs", self.shown, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.options.backoff_max)
                continue
            self._cap = cap
            self.connected, self.error = True, None
            delay, failures = self.options.backoff_start, 0
            while not self._stop.is_set():
                ok, bgr = cap.read()
                if not ok:
                    log.warning("source %s lost; reconnecting", self.shown)
                    self.error = f"source {self.shown} lost; reconnecting"
                    break
                self._put(bgr)
            self.connected = False
            cap.release()
            self._cap = None

    # -- consuming ----------------------------------------------------------------------------
    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame, or None at the end of a file/folder (or on timeout for a live source)."""
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            self._q.put(None)  # keep signalling the end
            self._ended = True
        return item

    @property
    def ended(self) -> bool:
        return getattr(self, "_ended", False)

    def __iter__(self):
        while True:
            f = self.read(timeout=5.0 if not self.live else 1.0)
            if f is None:
                if self.ended or self._stop.is_set():
                    return
                continue
            yield f

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._cap is not None:
            self._cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
