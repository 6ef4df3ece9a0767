"""`agegate bench`: model latency (default), `bench pipeline`, `bench train`, `bench report`."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from agegate.edge.cli_types import THREADS, IntList, json_option, threads_option
from agegate.train.config import MAX_INPUT, MIN_INPUT

PROFILE_NOTE = ("per-operator times: the LiteRT Python API exposes no op profiler. Build or download TFLite's "
                "benchmark_model and run:  benchmark_model --graph=MODEL.tflite --num_threads=2 "
                "--enable_op_profiling=true")


def _emit(result: dict, fmt: str, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    rows = result.get("results", [])
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        click.echo(buf.getvalue().rstrip())
    else:
        env = result["environment"]
        cols = ["model", "threads", "quantization", "size_mb", "init_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                "std_ms", "throughput_per_s", "ratio_vs_first"]
        if fmt == "md":
            click.echo("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
            for r in rows:
                click.echo("| " + " | ".join(str(Path(r[c]).name if c == "model" else r[c]) for c in cols) + " |")
        else:
            click.echo(f"{env['cpu_model']} ({env['cores']} cores; {' '.join(env['isa'])}); {env['runtime']} "
                       f"{env['runtime_version']}, delegate {env['delegate']}")
            click.echo(f"{'model':>28} {'thr':>3} {'quant':>8} {'MB':>6} {'init':>7} {'p50':>7} {'p90':>7} "
                       f"{'p99':>7} {'img/s':>7} {'ratio':>6}")
            for r in rows:
                click.echo(f"{Path(r['model']).name[-28:]:>28} {r['threads']:>3} {r['quantization'][:8]:>8} "
                           f"{r['size_mb']:>6.2f} {r['init_ms']:>7.1f} {r['p50_ms']:>7.2f} {r['p90_ms']:>7.2f} "
                           f"{r['p99_ms']:>7.2f} {r['throughput_per_s']:>7.0f} {r['ratio_vs_first']:>6.2f}")
            click.echo(f"ratio = p50 of {result['baseline']} / p50 of the row (same thread count); "
                       f"peak RSS {result['peak_rss_mb']} MB")
            for r in rows:
                if r.get("invokes_per_face", 1) > 1:
                    click.echo(f"{Path(r['model']).name} ({r['threads']} thr) averages {r['invokes_per_face']} "
                               f"views per face (tta): p50 per face {r['p50_per_face_ms']:.2f} ms")
    if out:
        click.echo(f"saved {out}", err=True)


class BenchGroup(click.Group):
    """`agegate bench MODEL...` measures models; the names below are subcommands."""

    def parse_args(self, ctx, args):
        # `agegate bench --threads 2 m.tflite`: the group has no such option, so options before the models
        # would be refused as unknown; they are the models command's when no subcommand is named.
        if (args and args[0].startswith("-") and args[0] not in ctx.help_option_names
                and not any(a in self.commands for a in args)):
            args = ["models", *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "models", self.commands["models"], args
        return super().resolve_command(ctx, args)


@click.group(cls=BenchGroup, invoke_without_command=False)
def bench() -> None:
    """Measure latency on this device: `agegate bench MODEL [MODEL...]`, or a subcommand.

    \b
      agegate bench a.tflite b.tflite --threads 1,2     model latency, interleaved
      agegate bench pipeline --source clip.mp4          the whole box, per stage
      agegate bench train --backbones mobilenet_v2      training images/s
      agegate bench report results/*.json --out r.md    merge devices
    """


@bench.command("models")
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", type=IntList(THREADS.min, THREADS.max), default="1,2", show_default=True,
              help="Comma-separated thread counts.")
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True, help="Untimed invokes first.")
@click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True,
              help="Timed rounds (each runs every model once, interleaved).")
@click.option("--delegate", type=click.Choice(["xnnpack", "none"]), default="xnnpack", show_default=True,
              help="xnnpack: as the box runs; none: the reference kernels.")
@click.option("--input", "input_source", default="random", show_default=True, help="random or real:DIR")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "md"]), default="table", show_default=True,
              help="What is printed (--out always saves JSON).")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option("--profile", is_flag=True, help="Per-operator profile (prints how to get one).")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the result JSON here.")
def models_cmd(models, threads, warmup, runs, delegate, input_source, fmt, as_json, profile, out):
    """Latency p50/p90/p99, throughput, init time and memory of MODELS (first is the baseline)."""
    from agegate.edge.progress import progress

    from .latency import bench_models

    if as_json:
        if fmt not in ("table", "json"):
            raise click.UsageError(f"--json prints JSON; it cannot be given with --format {fmt}")
        fmt = "json"

    with progress(runs, "bench", "round", show=fmt == "table") as bar:
        result = bench_models(list(models), threads, warmup, runs, delegate, input_source, bar.update)
    if profile:
        result["profile_note"] = PROFILE_NOTE
    _emit(result, fmt, out)
    if profile:
        click.echo(PROFILE_NOTE, err=True)


@bench.command("pipeline")
@click.option("--source", help="Video, folder, camera or stream [a generated 640x480 clip with one face].")
@click.option("--model", type=click.Path(exists=True, dir_okay=False), help="[the shipped default model]")
@click.option("--frames", type=click.IntRange(min=1), default=600, show_default=True, help="Frames timed per profile.")
@threads_option
@click.option("--profile", "profiles", type=click.Choice(["box", "landed"]), multiple=True,
              help="box: as it ships; landed: the first release's pipeline. Several run one after the other in "
                   "this process (compare them as ratios) [box].")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the result JSON here.")
@json_option
def pipeline_cmd(source, model, frames, threads, profiles, out, as_json):
    """End-to-end fps of the box pipeline with per-stage latency and RSS over time."""
    import tempfile

    from agegate.edge.default_model import assets_dir, resolve_model

    from .pipeline_bench import bench_pipeline, make_bench_video

    profiles = profiles or ("box",)
    with tempfile.TemporaryDirectory(prefix="agegate-bench-") as tmp:
        loops, src = 1, source
        if source is None:
            src = str(make_bench_video(sorted((assets_dir() / "demo").glob("*.jpg")),
                                       Path(tmp) / "one_face_640x480.mp4", frames=min(frames, 600)))
            loops = max(1, -(-frames // 600))
        runs = [bench_pipeline(src, str(resolve_model(model)), frames, threads, loops, profile=p) for p in profiles]
    result = runs[0] if len(runs) == 1 else {"kind": "pipeline-compare", "runs": runs,
                                             "fps_ratio_vs_first": [round(r["fps"] / runs[0]["fps"], 2) for r in runs],
                                             "environment": runs[0]["environment"]}
    if _save(result, out, as_json):
        return
    for r in runs:
        click.echo(f"[{r['profile']}] {r['frames']} frames in {r['seconds']} s: {r['fps']} fps "
                   f"(RSS {r['rss_start_mb']} MB at start, growth {r['rss_growth_mb']} MB, peak {r['peak_rss_mb']} MB)")
        for stage, v in r["stages"].items():
            click.echo(f"  {stage:>8}: p50 {v['p50_ms']:>7.2f} ms  p95 {v['p95_ms']:>7.2f} ms")


def _save(result: dict, out: str | None, as_json: bool) -> bool:
    """Write the result JSON to `out` (when given) and print it with --json; True when printed."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(result, indent=2))
    return as_json


@bench.command("frames")
@click.option("--model", type=click.Path(exists=True, dir_okay=False), help="[the shipped model]")
@threads_option
@click.option("--runs", type=click.IntRange(min=5), default=60, show_default=True, help="Timed frames per kind.")
@click.option("--huge", type=click.IntRange(min=640), default=8000, show_default=True,
              help="Side of the huge frame (timed once in a fresh process, with its peak RSS).")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the result JSON here.")
@json_option
def frames_cmd(model, threads, runs, huge, out, as_json):
    """Cost of one frame by content: empty till, one buyer, 1080p, 4K, and a huge photo (box vs landed profile,
    and the box with one detector pass: the demo buyer's face is small enough for its second look)."""
    from agegate.edge.default_model import resolve_model

    from .frames_bench import bench_frames

    result = bench_frames(str(resolve_model(model)), threads, runs, huge)
    if _save(result, out, as_json):
        return
    click.echo(f"{'frame':<18} {'box p50':>9} {'p95':>8}   {'one pass p50':>12}   {'landed p50':>10} {'p95':>8}  "
               f"(ms, {threads} threads)")
    for name, row in result["cases"].items():
        b, o, l = row["box"], row["box one pass"], row["landed"]
        click.echo(f"{name:<18} {b['p50_ms']:>9.2f} {b['p95_ms']:>8.2f}   {o['p50_ms']:>12.2f}   {l['p50_ms']:>10.2f} "
                   f"{l['p95_ms']:>8.2f}")
    h = result["huge"]
    for prof in ("box", "landed"):
        click.echo(f"{h['side']}x{h['side']} with a face ({prof}, fresh process): {h[prof]}")
    click.echo(f"empty / one-face p50: {result['empty_vs_face_ratio']}; "
               f"empty frame {result['empty_speedup_vs_landed']}x "
               f"faster than the landed profile; a small face's second look costs "
               f"{result['small_face_refine_cost']}x its one-pass frame")


@bench.command("fleet")
@click.option("--boxes", type=click.IntRange(min=1), default=1000, show_default=True, help="Boxes (4 per store).")
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True, help="Days of events per box.")
@click.option("--export-rows", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Rows in the one box database whose export is timed.")
@click.option("--work", type=click.Path(file_okay=False), help="Scratch folder [a temporary one, removed after].")
@click.option("--reuse", is_flag=True, help="With --work: time the tree a previous run generated there (same size).")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the result JSON here.")
@json_option
def fleet_cmd(boxes, days, export_rows, work, reuse, out, as_json):
    """Fleet analytics at chain scale: generate BOXES x DAYS of events (about 220 buyers per box-day),
    time `edge export` on one box's database and `fleet report` over the whole tree (rows/s, peak RSS)."""
    import shutil
    import tempfile

    from agegate.edge.progress import progress

    from .fleet_bench import bench_fleet

    folder = Path(work) if work else Path(tempfile.mkdtemp(prefix="agegate-fleet-"))
    try:
        with progress(boxes, "generate", "box") as bar:
            result = bench_fleet(folder, boxes, days, export_rows, bar.update, reuse=reuse and bool(work))
    finally:
        if not work:
            shutil.rmtree(folder, ignore_errors=True)
    if _save(result, out, as_json):
        return
    e, r = result["export"], result["report"]
    click.echo(f"{result['rows']:,} rows, {result['boxes']} boxes x {result['days']} days, {result['files']:,} files, "
               f"{result['tree_mb']} MB")
    click.echo(f"export: {e['rows']:,} rows in {e['seconds']} s ({e['rows_per_s']:,} rows/s), peak RSS {e['peak_rss_mb']} MB")
    click.echo(f"report: {r['rows']:,} rows in {r['seconds']} s ({r['rows_per_s']:,} rows/s), peak RSS "
               f"{r['peak_rss_mb']} MB; planted jumps {r['jumped_boxes_planted']}, found {r['jumped_boxes_found']}")


@bench.command("train")
@click.option("--backbones", default="mobilenet_v3_small,mobilenet_v2,efficientnet_b0,resnet50", show_default=True,
              help="Comma-separated names from the backbone registry.")
@click.option("--sizes", type=IntList(MIN_INPUT, MAX_INPUT), default="96,128", show_default=True,
              help="Comma-separated input sizes (px).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per step.")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed steps per backbone and size.")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the result JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Progress on stderr, the result JSON on stdout.")
def train_cmd(backbones, sizes, batch_size, steps, out, as_json):
    """Training images/s per backbone and input size (random data, the real model and optimizer)."""
    from .train_throughput import bench_training

    result = bench_training(backbones.split(","), sizes, batch_size, steps,
                            echo=lambda m: click.echo(m, err=as_json))
    _save(result, out, as_json)


@bench.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Markdown file to write.")
@click.option("--png", type=click.Path(dir_okay=False),
              help="Chart of p50 model latency, a panel per file (one run on one machine: compare within it).")
def report_cmd(results, out, png):
    """Merge result JSON files from several devices into one table (and chart)."""
    from .report import chart, load_results, markdown

    data = load_results(list(results))
    if png:  # first: a chart that cannot be drawn leaves no half-written result behind
        chart(data, Path(png))
    Path(out).write_text(markdown(data))
    click.echo(f"wrote {out}" + (f" and {png}" if png else ""))
