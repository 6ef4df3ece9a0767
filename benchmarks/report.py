"""Merge benchmark JSON files (from several devices) into one Markdown table and one bar chart."""
from __future__ import annotations

import json
from pathlib import Path


def load_results(paths: list[str]) -> list[dict]:
    from agegate.edge.errors import UsageError

    out = []
    for p in paths:
        try:
            d = json.loads(Path(p).read_text())
            if not isinstance(d, dict) or "kind" not in d:
                raise ValueError("no 'kind' field")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise UsageError(f"{p}: not an `agegate bench` result ({e}); give the JSON files that "
                             f"`agegate bench ... --out FILE` writes") from e
        d["_file"] = Path(p).name
        out.append(d)
    return out


def device_label(env: dict) -> str:
    isa = "+".join(f for f in env.get("isa", []) if f in ("avx2", "avx512f", "amx_tile", "asimd", "neon"))
    return f"{env.get('cpu_model', '?')} x{env.get('cores', '?')} ({isa or 'base'})"


def markdown(results: list[dict]) -> str:
    lines = ["| device | model | threads | quant | size MB | p50 ms | p90 ms | p99 ms | ratio vs first | p50 ms per face "
             "| file |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    pipe = ["| device | model | frames | fps | detect p50 | infer p50 | frame p50/p95 ms | RSS growth MB | file |",
            "|---|---|---|---|---|---|---|---|---|"]
    for d in results:
        dev = device_label(d.get("environment", {}))
        if d.get("kind") == "model":
            for r in d["results"]:
                lines.append(f"| {dev} | {Path(r['model']).name} | {r['threads']} | {r['quantization']} | "
                             f"{r['size_mb']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
                             f"{r['ratio_vs_first']} | {r.get('p50_per_face_ms', r['p50_ms'])} | {d['_file']} |")
        elif d.get("kind") in ("pipeline", "pipeline-compare"):
            for r in d.get("runs", [d]):
                s = r["stages"]
                pipe.append(f"| {dev} | {Path(r['model']).name} ({r.get('profile', 'box')}) | {r['frames']} | "
                            f"{r['fps']} | {s['detect']['p50_ms']} | {s['infer']['p50_ms']} | "
                            f"{s['frame']['p50_ms']}/{s['frame']['p95_ms']} | {r['rss_growth_mb']} | {d['_file']} |")
    frames = ["| device | frame | box p50/p95 ms | box, one detector pass | landed p50/p95 ms | file |",
              "|---|---|---|---|---|---|"]
    replays = ["| device | buyers | gaps | decided | merged | split | MAE | minors ok | 25+ asked | fps | file |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in results:
        dev = device_label(d.get("environment", {}))
        if d.get("kind") == "frames":
            for name, row in d["cases"].items():
                b, lnd, one = row["box"], row["landed"], row.get("box one pass")  # none before 2026-12-04
                once = f"{one['p50_ms']}/{one['p95_ms']}" if one else "-"
                frames.append(f"| {dev} | {name} | {b['p50_ms']}/{b['p95_ms']} | {once} | "
                              f"{lnd['p50_ms']}/{lnd['p95_ms']} | {d['_file']} |")
            h = d["huge"]
            frames.append(f"| {dev} | {h['side']}x{h['side']}, one face (s; peak RSS MB) | {h['box']['seconds']} s; "
                          f"{h['box']['peak_rss_mb']} | - | {h['landed']['seconds']} s; {h['landed']['peak_rss_mb']} | "
                          f"{d['_file']} |")
        elif d.get("kind") == "replay":
            pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
            few = lambda x, n: f"{100 * x:.2f}% ({n})"  # noqa: E731 - rare events: the count, and a second decimal
            replays.append(f"| {dev} | {d['buyers']} | {d['gap'][0]}..{d['gap'][1]} | {pct(d['decided_share'])} | "
                           f"{few(d['merged_share'], d['merged'])} | {few(d['split_share'], d['split_buyers'])} | {d['mae']} | "
                           f"{few(d['minors_ok_share'], d['minors_decided_ok'])} | {pct(d['adults_asked_share'])} | {round(d['fps'], 1)} | "
                           f"{d['_file']} |")
    train = ["| device | backbone | input | batch | images/s | params (M) | file |", "|---|---|---|---|---|---|---|"]
    for d in results:
        if d.get("kind") == "train":
            dev = device_label(d.get("environment", {}))
            for r in d["results"]:
                train.append(f"| {dev} | {r['backbone']} | {r['input_size']} | {r['batch_size']} | "
                             f"{r['images_per_s']} | {r['params_m']} | {d['_file']} |")
    fleet = ["| device | boxes x days | rows | files | report s | report rows/s | report peak RSS MB | export rows/s | "
             "camera problems found | file |", "|---|---|---|---|---|---|---|---|---|---|"]
    for d in results:
        if d.get("kind") == "fleet":
            r, e = d["report"], d["export"]
            problems = []  # uncertain jumps; cameras seeing buyers turned (runs since the turn column)
            for kind, what in (("jumped", "jumps"), ("turned", "turned")):
                if r.get(f"{kind}_boxes_planted") is not None:
                    found, planted = r[f"{kind}_boxes_found"], r[f"{kind}_boxes_planted"]
                    problems.append(f"{what} {len(found)} of {len(planted)}"
                                    + ("" if sorted(found) == sorted(planted) else " (mismatch)"))
            fleet.append(f"| {device_label(d.get('environment', {}))} | {d['boxes']} x {d['days']} | {d['rows']:,} | "
                         f"{d['files']:,} | {r['seconds']} | {r['rows_per_s']:,} | {r['peak_rss_mb']} | "
                         f"{e['rows_per_s']:,} | {', '.join(problems)} | {d['_file']} |")
    out = ("# Benchmark results\n\nMerged by `agegate bench report` from the JSON files named in the last column "
           "(made by `benchmarks/run_all.sh`). Compare timings only within one file: the ratio column is "
           "measured in one interleaved run. The p50 columns are per model invoke; `p50 ms per face` counts "
           "every view of a model with test-time augmentation (metadata `tta`, `tta_sizes`: the face and its mirror "
           "image, at each input size). In the pipeline row, "
           "`capture` (not shown) is the time a frame "
           "waited in the reader's queue.\n\n## Model latency\n\n" + "\n".join(lines) + "\n")
    if len(pipe) > 2:
        out += "\n## Box pipeline\n\n" + "\n".join(pipe) + "\n"
    if len(frames) > 2:
        out += ("\n## Cost of one frame (box vs the landed pipeline, same run)\n\n" + "\n".join(frames) + "\n")
    if len(replays) > 2:
        out += "\n## Per-buyer replay (`agegate replay`)\n\n" + "\n".join(replays) + "\n"
    if len(fleet) > 2:
        out += "\n## Fleet analytics (`agegate bench fleet`: edge export, fleet report)\n\n" + "\n".join(fleet) + "\n"
    if len(train) > 2:
        out += "\n## Training throughput\n\n" + "\n".join(train) + "\n"
    envs = {device_label(d.get("environment", {})): d.get("environment", {}) for d in results}
    out += "\n## Machines\n\n" + "\n".join(
        f"- {k}: ISA flags {' '.join(e.get('isa', []))}; {e.get('os', '')}; Python {e.get('python', '')}; "
        f"{e.get('runtime', '')} {e.get('runtime_version', '')}" for k, e in envs.items()) + "\n"
    return out


def chart(results: list[dict], path: Path) -> None:
    """The PNG of `draw_chart` (`agegate bench report --png`)."""
    from agegate.edge.figures import save_figure

    save_figure(draw_chart(results), path)


def draw_chart(results: list[dict]):
    """p50 latency of every model result, one panel per file: a file is one interleaved run on one machine, and
    timings compare only within it (its ratios). One axis across files once set a Xeon's bars beside an EPYC's
    and a 1 ms model beside an 80 ms one, where neither could be read. Bars are labelled with their p50 and the
    run's own ratio (the first model's p50 over this one's: 2x is twice as fast); a panel whose bars span more than
    20x is drawn on a log scale."""
    from agegate.edge.errors import UsageError
    from agegate.edge.figures import pyplot

    runs = [d for d in results if d.get("kind") == "model" and d.get("results")]
    if not runs:
        raise UsageError("--png draws model latency, and none of these files is an `agegate bench` model result")
    heights = [0.6 + 0.28 * len(d["results"]) for d in runs]
    fig, axes = pyplot().subplots(len(runs), 1, figsize=(10, sum(heights) + 0.5), squeeze=False,
                                  layout="constrained", gridspec_kw={"height_ratios": heights})
    for ax, d in zip(axes[:, 0], runs):
        rows = d["results"]
        p50 = [r["p50_ms"] for r in rows]
        y = range(len(rows))
        ax.barh(y, p50, color="#3b6ea8")
        ax.set_yticks(y, [f"{_short(Path(r['model']).name)}, {r['threads']} thr" for r in rows], fontsize=7)
        ax.invert_yaxis()  # first row on top, as in the table
        if max(p50) > 20 * min(p50):
            ax.set_xscale("log")
        for i, r in enumerate(rows):
            ax.text(r["p50_ms"], i, f" {r['p50_ms']:g} ms ({r['ratio_vs_first']:g}x)", va="center", fontsize=7)
        ax.set_xlim(right=ax.get_xlim()[1] * (3 if ax.get_xscale() == "log" else 1.3))  # room for the labels
        ax.set_title(f"{d['_file']}: {device_label(d.get('environment', {}))}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("p50 ms per invoke; (Nx): speed against the run's first model at as many threads",
                           fontsize=8)
    return fig


def _short(name: str, most: int = 40) -> str:
    """A model's name as a chart label: a note a result carries in it (`x.tflite (v2; measured as ...)`) cut."""
    return name if len(name) <= most else name[: most - 1] + "\u2026"
