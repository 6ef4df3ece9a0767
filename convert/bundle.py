"""Build and sign model bundles for the field (the box side lives in agegate.edge.bundle_format).

A bundle refuses a model whose QA report failed its gate, unless forced; a forced
bundle says so in its manifest and metadata, and every later step shows it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

from agegate.edge.bundle_format import BUNDLE_FORMAT, MANIFEST, SIGNATURE, VERSION_RE, tar_bytes
from agegate.edge.contracts import RELEASE_META, RELEASE_MODEL
from agegate.edge.errors import BundleError, UsageError
from agegate.edge.metadata import BundleInfo, now_iso, read_metadata, sha256_file, sidecar_path


def keygen(out_prefix: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv, pub = out_prefix.with_suffix(".pem"), out_prefix.with_suffix(".pub")
    if priv.exists():
        raise UsageError(f"{priv} exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    priv.parent.mkdir(parents=True, exist_ok=True)
    # Created readable by its owner only (O_EXCL, mode 0600): written first and narrowed after, the key was
    # readable by every user of the machine in between.
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def _load_private_key(path: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, OSError) as e:
        raise UsageError(f"{path}: not a readable PEM private key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: not an Ed25519 key (make one with `agegate bundle keygen`)")
    return key


def check_qa_is_of(qa: dict, qa_report: Path, model: Path, model_sha256: str) -> None:
    """Refuse a QA report that judged other bytes: another model of the same name (a retrained model.tflite
    would pass with its predecessor's verdict), or this model with its metadata changed since (a new
    operating point that QA never checked). A report written before agegate recorded what it judged
    (no `quantized_sha256`) is matched by the model's file name, as then."""
    judged = qa.get("quantized_sha256")
    if not judged:
        if qa.get("quantized_model") and Path(qa["quantized_model"]).name != model.name:
            raise BundleError(f"{qa_report} is the QA report of {qa['quantized_model']}, not of {model}")
        return
    if judged != model_sha256:
        raise BundleError(f"{qa_report} judged another file ({qa.get('quantized_model')}, sha256 {judged[:12]}), "
                          f"not {model} (sha256 {model_sha256[:12]}); run `agegate qa` on this model")
    side = sidecar_path(model)
    if qa.get("quantized_metadata_sha256") not in (None, "", sha256_file(side)):
        raise BundleError(f"{side} changed since QA judged {model.name} (calibrated again? its operating point "
                          f"and temperature live there); run `agegate qa` on the model as it is now")


def qa_data(qa: dict) -> list[str] | None:
    """What the QA verdict was judged on, as the manifest says it (`bundle info`): `utkface [test] 2396 images`,
    marked when a --limit subset and with the images left out (unreadable, no face) when any; None for a report from
    before QA recorded it."""
    from .qa import data_label  # qa.py reads models; keygen, verify and info need none of it

    data = qa.get("data")
    if not isinstance(data, list) or not data:
        return None
    return [f"{data_label(d)} {d.get('images')} images" + (" (--limit)" if d.get("limit") else "")
            + (f" ({d['skipped']} left out: unreadable or no face)" if d.get("skipped") else "")
            for d in data if isinstance(d, dict)]


def build_bundle(model: Path, qa_report: Path, out: Path, sign_key: Path, card: Path | None = None,
                 name: str = "model", version: str | None = None, latency_budget_ms: float = 15.0,
                 force: bool = False) -> dict:
    if out.exists():
        raise UsageError(f"{out} exists: a signed bundle is not written over (a box knows a release by its version, "
                         f"and two bundles of one version with different models would each pass for the other); "
                         f"choose another --version or --out, or remove it first")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise UsageError("--name may hold letters, digits, '.', '_' and '-' only")
    meta = read_metadata(model)
    try:
        qa = json.loads(qa_report.read_text())
        if not isinstance(qa, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{qa_report}: not a QA report ({e}); give the report.json that `agegate qa --out DIR` "
                          f"wrote") from e
    passed = bool(qa.get("passed"))
    model_bytes = model.read_bytes()
    sha = hashlib.sha256(model_bytes).hexdigest()
    check_qa_is_of(qa, qa_report, model, sha)
    if not passed and not force:
        failed = [f"{g['name']} ({g['value']}, limit {g['limit']})" for g in qa.get("gates", []) if not g["passed"]]
        raise BundleError(f"refused: {model.name} failed QA: {', '.join(failed) or 'no verdict'}; "
                          f"fix the model, or pass --force (recorded in the bundle and shown at every step)")
    version = version or f"{meta.created[:10].replace('-', '')}-{sha[:8]}"
    if not VERSION_RE.match(version):
        raise UsageError(f"--version {version!r}: 1-64 letters, digits, '.', '_', '+', '-', not starting with "
                         f"'.' or '-' (it names the release folder on every box)")
    if card is None:
        card_text = (f"# {name} {version}\n\nNo model card was given when this bundle was built.\n")
    else:
        card_text = card.read_text()
    qm = qa.get("quantized_metrics", {})
    bundled_meta = dataclasses.replace(meta, bundle=BundleInfo(
        name, version, passed, force and not passed, qm.get("mae"), qa.get("n"), latency_budget_ms))
    files = {
        RELEASE_MODEL: model_bytes,
        RELEASE_META: (json.dumps(bundled_meta.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
        "MODEL_CARD.md": card_text.encode(),
        "qa/report.json": qa_report.read_bytes(),
    }
    manifest = {
        "format": BUNDLE_FORMAT, "name": name, "version": version, "created": now_iso(),
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
        "model_sha256": sha, "source_sha256": meta.source_sha256, "data_fingerprint": meta.data_fingerprint,
        "quantization": meta.quantization, "qa_passed": passed, "forced": force and not passed,
        "latency_budget_ms": latency_budget_ms, "qa_mae": qm.get("mae"), "qa_data": qa_data(qa),
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files[MANIFEST] = manifest_bytes
    files[SIGNATURE] = _load_private_key(sign_key).sign(manifest_bytes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(tar_bytes(files))
    tmp.replace(out)
    return manifest
