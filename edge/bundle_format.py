"""The signed model bundle, as the box reads it: verify before anything is written.

A bundle is a .tar.gz holding manifest.json, manifest.sig (Ed25519 over the exact
manifest bytes), model.tflite, model.json, MODEL_CARD.md and qa/report.json. The
manifest lists every other file with its SHA-256. `read_bundle` checks, in memory
and before extraction: member types and names (no absolute paths, no '..', no
links or devices), counts and sizes, the signature, then every hash, and that no
file is unlisted. Only then may `extract_verified` write the files.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .contracts import RELEASE_META, RELEASE_MODEL
from .errors import BundleError

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
REQUIRED = (RELEASE_MODEL, RELEASE_META, "MODEL_CARD.md", "qa/report.json")
MAX_FILES = 16
MAX_BYTES = 256 * 1024 * 1024  # a bundle holds one small model; anything bigger is not one
BUNDLE_FORMAT = 1
#: A version names a folder under releases/: one path segment, no dots first, no separators.
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def validate_manifest(manifest: object, where: str) -> dict:
    """Check the manifest's own fields before anything on the box changes: a signed manifest can still be
    wrong (an empty version once made install delete every release). Raises BundleError."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: {MANIFEST} is not a JSON object")
    version = manifest.get("version")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise BundleError(f"refused: {where}: bad version {version!r} in {MANIFEST} (1-64 letters, digits, "
                          f"'.', '_', '+', '-', not starting with '.' or '-'); rebuild it with `agegate bundle build "
                          f"--version V`")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"refused: {where}: {MANIFEST} lists no files")
    for name, digest in files.items():
        _safe_name(name)
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise BundleError(f"refused: {where}: {name} has no valid SHA-256 in {MANIFEST}")
    if not isinstance(manifest.get("model_sha256", ""), str):
        raise BundleError(f"refused: {where}: model_sha256 is not a string")
    return manifest


@dataclass
class VerifiedBundle:
    path: Path
    manifest: dict
    files: dict[str, bytes]  # name -> content, every hash checked

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def forced(self) -> bool:
        return bool(self.manifest.get("forced"))


def load_public_key(path: str | Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    p = Path(path)
    if not p.exists():
        raise BundleError(f"{p}: public key not found (make a key pair with `agegate bundle keygen`)")
    try:
        key = load_pem_public_key(p.read_bytes())
    except ValueError as e:
        raise BundleError(f"{p}: not a PEM public key ({e})") from e
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{p}: not an Ed25519 public key")
    return key


def _safe_name(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or "\\" in name or not name:
        raise BundleError(f"refused: unsafe path {name!r} in bundle")
    return str(p)


def bundle_files(path: str | Path) -> dict[str, bytes]:
    """Every regular file of a bundle, read into memory with each member's name, kind and size checked (no
    signature checked: `read_bundle` does that). Raises BundleError with the reason."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"{p}: no such bundle")
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(p, "r:gz") as tar:
            for m in tar:
                name = _safe_name(m.name)
                if m.isdir():
                    continue
                if not m.isfile():
                    kind = "link" if (m.issym() or m.islnk()) else "device or special file"
                    raise BundleError(f"refused: {name!r} is a {kind}; bundles hold regular files only")
                if len(files) >= MAX_FILES:
                    raise BundleError(f"refused: more than {MAX_FILES} files")
                total += m.size
                if total > MAX_BYTES:
                    raise BundleError(f"refused: more than {MAX_BYTES // 2**20} MiB of content")
                if name in files:
                    raise BundleError(f"refused: {name!r} appears twice")
                f = tar.extractfile(m)
                files[name] = f.read() if f else b""
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"{p}: not a readable .tar.gz bundle ({e})") from e
    if MANIFEST not in files or SIGNATURE not in files:
        raise BundleError(f"{p}: no {MANIFEST} and {SIGNATURE}; not an agegate bundle")
    return files


def read_manifest(path: str | Path, files: dict[str, bytes]) -> dict:
    """The bundle's manifest, parsed and its shape checked (not its signature)."""
    try:
        return validate_manifest(json.loads(files[MANIFEST]), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({e})") from e


def read_bundle(path: str | Path, public_key_path: str | Path | None) -> VerifiedBundle:
    """Open, check and verify a bundle entirely in memory. Raises BundleError with the reason."""
    p = Path(path)
    files = bundle_files(p)
    if public_key_path is None:
        raise BundleError("no public key to verify the signature with; pass --pub KEY")
    from cryptography.exceptions import InvalidSignature

    try:
        load_public_key(public_key_path).verify(files[SIGNATURE], files[MANIFEST])
    except InvalidSignature:
        raise BundleError(f"{p}: the manifest's signature does not verify with {public_key_path}; "
                          f"the bundle was altered or signed with another key") from None
    manifest = read_manifest(p, files)
    listed = manifest["files"]
    for name, digest in listed.items():
        if name not in files:
            raise BundleError(f"{p}: {name} is listed in the manifest but missing")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise BundleError(f"{p}: {name} does not match its SHA-256 in the manifest (changed after signing)")
    extra = set(files) - set(listed) - {MANIFEST, SIGNATURE}
    if extra:
        raise BundleError(f"{p}: unlisted file(s) {sorted(extra)}")
    missing = [r for r in REQUIRED if r not in listed]
    if missing:
        raise BundleError(f"{p}: required file(s) missing: {missing}")
    return VerifiedBundle(p, manifest, files)


def extract_verified(bundle: VerifiedBundle, dest: Path) -> None:
    """Write the verified contents (never the tar itself) under dest."""
    for name, data in bundle.files.items():
        out = dest / _safe_name(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)


def check_release(folder: Path) -> dict:
    """Re-hash an installed release against its manifest: {file: ok?}; used by status and doctor.
    A missing or unreadable manifest is {MANIFEST: False}."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if not isinstance(manifest.get("files"), dict):
            return {MANIFEST: False}
    except (OSError, ValueError, AttributeError):
        return {MANIFEST: False}
    out = {}
    for name, digest in manifest["files"].items():
        f = folder / name
        out[name] = f.exists() and hashlib.sha256(f.read_bytes()).hexdigest() == digest
    return out


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """A deterministic .tar.gz of in-memory files (used by bundle build; tests craft bad ones with it)."""
    import gzip

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)
