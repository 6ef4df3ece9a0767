"""The on-box side of provisioning: verified, atomic install; rollback; status.

Layout under ROOT (default /opt/agegate):
    trusted.pub                 the fleet's public key (used when --pub is not given)
    releases/VERSION/           one complete, verified release per folder
    current -> releases/VERSION the live release (a symlink, switched atomically)
    state.json                  install history (version, sha, time, forced)

Order of an install: verify signature and hashes in memory -> unpack into a
temporary folder -> smoke test there (loads, one inference on an embedded face
gives an age in range, p50 latency within the bundle's budget) -> rename into
releases/ -> write a new link and rename it over `current`. A failure or a kill at
any point leaves `current` on the previous, complete release.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle_format import check_release, extract_verified, read_bundle
from .errors import AgegateError, BundleError

KEEP_RELEASES = 3
DEFAULT_ROOT = Path("/opt/agegate")


@dataclass
class SmokeResult:
    age: float
    p50_ms: float
    budget_ms: float | None


def smoke_test(release: Path, runs: int = 15) -> SmokeResult:
    from .default_model import assets_dir
    from .preprocess import decode_image
    from .runtime import AgeModel

    model = AgeModel(release / "model.tflite", threads=2)
    face = decode_image(sorted((assets_dir() / "demo").glob("*.jpg"))[0])
    from .detect import FaceDetector, crop_face

    faces = FaceDetector().detect(face)
    crop = crop_face(face, faces[0], model.spec.face_margin) if faces else face
    times, age = [], 0.0
    for _ in range(runs):
        t0 = time.perf_counter()
        age = model.predict_face(crop)
        times.append((time.perf_counter() - t0) * 1000)
    lo, hi = model.meta.age_range
    if not (np.isfinite(age) and min(0.0, lo) <= age <= max(120.0, hi)):
        raise AgegateError(f"smoke test: the model answered {age!r} for an embedded face, outside {lo:g}..{hi:g}")
    budget = model.meta.extra.get("bundle", {}).get("latency_budget_ms")
    p50 = statistics.median(times[2:])
    if budget and p50 > budget:
        raise AgegateError(f"smoke test: p50 inference {p50:.1f} ms exceeds the bundle's budget {budget} ms")
    return SmokeResult(age, p50, budget)


class BoxRoot:
    def __init__(self, root: str | Path = DEFAULT_ROOT):
        self.root = Path(root)
        self.releases = self.root / "releases"
        self.current = self.root / "current"
        self.state_path = self.root / "state.json"

    # -- state --------------------------------------------------------------------------------
    def state(self) -> dict:
        if self.state_path.exists():
            return json.loads(self.state_path.read_text())
        return {"history": []}

    def _write_state(self, state: dict) -> None:
        tmp = self.state_path.with_name(f".state-{uuid.uuid4().hex}.json")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.state_path)

    def current_version(self) -> str | None:
        if not self.current.is_symlink():
            return None
        return Path(os.readlink(self.current)).name

    def _switch(self, version: str) -> None:
        """Point `current` at releases/VERSION atomically: new link, then rename over the old one."""
        link = self.root / f".current-{uuid.uuid4().hex}"
        os.symlink(Path("releases") / version, link)
        os.replace(link, self.current)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- install ------------------------------------------------------------------------------
    def install(self, bundle_path: str | Path, pub: str | Path | None = None, echo=print) -> dict:
        pub = pub or (self.root / "trusted.pub")
        bundle = read_bundle(bundle_path, pub)  # nothing is written before this passes
        version = bundle.version
        if "/" in version or version.startswith("."):
            raise BundleError(f"refused: bad version {version!r}")
        if bundle.forced:
            echo("WARNING: this bundle is FORCED: its model failed QA")
        self.releases.mkdir(parents=True, exist_ok=True)
        final = self.releases / version
        if final.exists():
            if self.current_version() == version:
                raise BundleError(f"{version} is already installed and current")
            shutil.rmtree(final)  # an older copy of the same version, not live: replace it
        staging = self.releases / f".staging-{version}-{uuid.uuid4().hex[:8]}"
        try:
            extract_verified(bundle, staging)
            smoke = smoke_test(staging)
            os.replace(staging, final)
        except BaseException as e:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(e, AgegateError):
                raise BundleError(f"install of {version} failed, {self.current_version() or 'nothing'} stays "
                                  f"current: {e}") from e
            raise
        previous = self.current_version()
        self._switch(version)
        state = self.state()
        state["history"].append({"version": version, "installed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "model_sha256": bundle.manifest["model_sha256"], "forced": bundle.forced,
                                 "previous": previous, "smoke_age": round(smoke.age, 2),
                                 "smoke_p50_ms": round(smoke.p50_ms, 2)})
        self._write_state(state)
        self._prune()
        return {"version": version, "previous": previous, "smoke": smoke.__dict__, "forced": bundle.forced}

    def _prune(self) -> None:
        """Keep the newest KEEP_RELEASES releases (current always among them); drop stale staging."""
        order = [h["version"] for h in self.state()["history"]]
        keep: list[str] = []
        for v in reversed(order):
            if v not in keep:
                keep.append(v)
        keep = keep[:KEEP_RELEASES]
        cur = self.current_version()
        for d in self.releases.iterdir():
            if d.name.startswith(".staging-") or (d.name not in keep and d.name != cur):
                shutil.rmtree(d, ignore_errors=True)

    def rollback(self) -> dict:
        cur = self.current_version()
        if cur is None:
            raise AgegateError(f"{self.root}: nothing installed, nothing to roll back")
        history = [h["version"] for h in self.state()["history"]]
        candidates = [v for v in reversed(history) if v != cur and (self.releases / v).is_dir()]
        if not candidates:
            raise AgegateError(f"no earlier release left under {self.releases} to roll back to")
        target = candidates[0]
        self._switch(target)
        manifest = json.loads((self.releases / target / "manifest.json").read_text())
        state = self.state()
        state["history"].append({"version": target, "installed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "rollback_from": cur, "previous": cur, "model_sha256": manifest["model_sha256"],
                                 "forced": bool(manifest.get("forced"))})
        self._write_state(state)
        return {"version": target, "previous": cur}

    def status(self) -> dict:
        cur = self.current_version()
        releases = []
        if self.releases.is_dir():
            for d in sorted(self.releases.iterdir()):
                if d.name.startswith("."):
                    continue
                m = json.loads((d / "manifest.json").read_text()) if (d / "manifest.json").exists() else {}
                ok = check_release(d) if m else {}
                releases.append({"version": d.name, "current": d.name == cur, "forced": bool(m.get("forced")),
                                 "model_sha256": m.get("model_sha256"), "intact": bool(ok) and all(ok.values()),
                                 "qa_mae": m.get("qa_mae")})
        history = self.state()["history"]
        installed = {h["version"]: h["installed"] for h in history}
        for r in releases:
            r["installed"] = installed.get(r["version"])
        prev = next((h.get("previous") for h in reversed(history) if h["version"] == cur), None)
        return {"root": str(self.root), "current": cur, "previous": prev, "releases": releases,
                "forced_live": any(r["forced"] and r["current"] for r in releases)}
