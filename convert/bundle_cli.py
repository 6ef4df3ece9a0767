"""`agegate bundle build|keygen|verify|info`."""
from __future__ import annotations

import json
from pathlib import Path

import click

from agegate.edge.cli_types import json_option


@click.group()
def bundle() -> None:
    """Build, sign, verify and inspect model bundles for checkout boxes."""


@bundle.command()
@click.option("--out", "prefix", default="agegate-signing", show_default=True, type=click.Path(dir_okay=False),
              help="Writes PREFIX.pem (private, keep it off the boxes) and PREFIX.pub (install on boxes).")
@click.option("--json", "as_json", is_flag=True, help="Print the two files written as JSON.")
def keygen(prefix, as_json):
    """Make an Ed25519 signing key pair (an existing PREFIX.pem is never overwritten)."""
    from .bundle import keygen as make

    priv, pub = make(Path(prefix))
    if as_json:
        click.echo(json.dumps({"ok": True, "private_key": str(priv), "public_key": str(pub)}, indent=2))
        return
    click.echo(f"private key: {priv} (keep secret)\npublic key:  {pub} (goes on every box)")


@bundle.command()
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False), help="int8 .tflite (+ .json)")
@click.option("--qa", "qa_report", required=True, type=click.Path(exists=True, dir_okay=False),
              help="qa/report.json from `agegate qa` for this model.")
@click.option("--card", type=click.Path(exists=True, dir_okay=False), help="MODEL_CARD.md")
@click.option("--sign-key", required=True, type=click.Path(exists=True, dir_okay=False), help="Ed25519 private PEM.")
@click.option("--name", default="model", show_default=True, help="The model's name in the bundle and on the box.")
@click.option("--version", help="[date of the model + hash prefix]")
@click.option("--latency-budget-ms", type=click.FloatRange(min=0, min_open=True), default=15.0, show_default=True,
              help="p50 inference budget the box's smoke test and doctor enforce.")
@click.option("--force", is_flag=True, help="Bundle a model that failed QA (recorded and shown everywhere).")
@click.option("--out", type=click.Path(dir_okay=False), help="[agegate-NAME-VERSION.tar.gz]")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle written (or why not) as JSON.")
def build(model, qa_report, card, sign_key, name, version, latency_budget_ms, force, out, as_json):
    """Package a QA-passed model with its metadata, card and QA report; sign the manifest."""
    from .bundle import build_bundle

    if out is None:
        from agegate.edge.metadata import read_metadata, sha256_file

        created = read_metadata(model).created[:10].replace("-", "")
        out = f"agegate-{name}-{version or created + '-' + sha256_file(model)[:8]}.tar.gz"
    m = build_bundle(Path(model), Path(qa_report), Path(out), Path(sign_key), Path(card) if card else None, name,
                     version, latency_budget_ms, force)
    if m["forced"]:
        click.secho("WARNING: FORCED bundle of a model that failed QA", fg="red", err=True)
    if as_json:
        click.echo(json.dumps({"ok": True, "out": str(out), "name": m["name"], "version": m["version"],
                               "files": sorted(m["files"]), "qa_passed": m["qa_passed"], "forced": m["forced"]},
                              indent=2))
        return
    click.echo(f"{out}: {m['name']} {m['version']}, {len(m['files'])} files, QA "
               f"{'passed' if m['qa_passed'] else 'FAILED'}, signed")


@bundle.command()
@click.argument("bundle_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--pub", required=True, type=click.Path(exists=True, dir_okay=False), help="Ed25519 public key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or why it failed) as JSON.")
def verify(bundle_path, pub, as_json):
    """Check the signature and every hash. Exit 0 only for an intact bundle."""
    from agegate.edge.bundle_format import read_bundle

    b = read_bundle(bundle_path, pub)
    if as_json:
        click.echo(json.dumps({"ok": True, "name": b.manifest["name"], "version": b.version,
                               "files": len(b.manifest["files"]), "forced": b.forced}, indent=2))
        return
    click.echo(f"OK: {b.manifest['name']} {b.version}, {len(b.manifest['files'])} files verified"
               + ("  [FORCED: failed QA]" if b.forced else ""))


@bundle.command()
@click.argument("bundle_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--pub", type=click.Path(exists=True, dir_okay=False), help="Verify too.")
@json_option
def info(bundle_path, pub, as_json):
    """Show a bundle's manifest (verified when --pub is given)."""
    from agegate.edge.bundle_format import bundle_files, read_bundle, read_manifest

    if pub:
        manifest = read_bundle(bundle_path, pub).manifest
    else:
        manifest = read_manifest(bundle_path, bundle_files(bundle_path))
    if as_json:
        click.echo(json.dumps({**manifest, "verified": bool(pub)}, indent=2))
        return
    click.echo(f"{manifest['name']} {manifest['version']} ({manifest['quantization']}), created {manifest['created']}")
    judged = f" on {', '.join(manifest['qa_data'])}" if manifest.get("qa_data") else ""
    click.echo(f"QA {'passed' if manifest['qa_passed'] else 'FAILED'}{judged}, MAE {manifest.get('qa_mae')}, latency "
               f"budget {manifest['latency_budget_ms']} ms" + ("  [FORCED]" if manifest.get("forced") else ""))
    for f, h in manifest["files"].items():
        click.echo(f"  {h[:16]}  {f}")
    click.echo("signature verified" if pub else "signature NOT checked (pass --pub)")
