"""What a benchmark run shows and writes: our rates beside the paper's Table 1, throughput,
a paper-scale time estimate, and the files results.json, results.csv, table.md and
figure.png.

Paper numbers are Table 1 of Delétang et al. (ICLR 2024): raw compression rates in percent
on 1 GB (488,281 chunks of 2048 bytes) of enwik9, ImageNet, LibriSpeech and random bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from gencomp.bench import OUTPUT_FILES, PAPER_BYTES, PAPER_NUM_CHUNKS, RunOutcome
from gencomp.datasets import data_source
from gencomp.fileio import write_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Worker counts the paper-scale estimate is shown for.
ESTIMATE_WORKERS = (1, 2, 16, 64)


def dataset_title(dataset: str) -> str:
    """The paper's name for a data set (its column title)."""
    return data_source(dataset).title


def paper_rate(row: dict[str, Any], mode: str) -> float | None:
    """The paper's number for this row's cell, if it published one."""
    source = data_source(row["dataset"])
    if mode == "adjusted":
        by_size = source.paper_transformer_adjusted
        if row["compressor"] != "transformer" or not by_size:
            return None
        size = min(by_size, key=lambda size: abs(math.log(size / max(row["num_parameters"], 1))))
        # Beside a model of about the same size only (the paper's 200K preset is 232K).
        close = abs(math.log(size / max(row["num_parameters"], 1))) < math.log(1.5)
        return by_size[size] if close else None
    return source.paper_rates.get(mode, {}).get(row["compressor"])


def _cell(ours: float | None, paper: float | None) -> str:
    if ours is None:
        return "—"
    return f"{ours:.1f} ({paper:.1f})" if paper is not None else f"{ours:.1f}"


def _grid(rows: list[dict[str, Any]], mode: str) -> tuple[list[str], list[list[str]]]:
    """Compressor × data set cells 'ours (paper)' for one mode."""
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    compressors = list(dict.fromkeys(row["compressor"] for row in rows
                                     if mode == "chunked" or not row["is_model"]))
    lookup = {(row["compressor"], row["dataset"]): row for row in rows}
    header = ["compressor"] + [dataset_title(name) for name in datasets]
    body = [[name] + [_cell(lookup[name, dataset][f"{mode}_rate"],
                            paper_rate(lookup[name, dataset], mode)) for dataset in datasets]
            for name in compressors]
    return header, body


def _model_grid(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "data set", "parameters", "raw", "adjusted (this data)",
              "adjusted at 1 GB (paper)", "held out (training record)",
              "Chinchilla 70B raw (paper)"]
    body = [[row["compressor"], dataset_title(row["dataset"]), f"{row['num_parameters']:,}",
             f"{row['chunked_rate']:.1f}", f"{row['adjusted_rate']:.1f}",
             _cell(row["adjusted_rate_1gb"], paper_rate(row, "adjusted")),
             _cell(row.get("held_out_rate"), None),
             _cell(data_source(row["dataset"]).paper_chinchilla_rate, None)]
            for row in rows if row["is_model"]]
    return header, body


def throughput(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per compressor: compute seconds, MB/s chunked and unchunked, seconds per chunk."""
    summary = []
    for name in dict.fromkeys(row["compressor"] for row in rows):
        mine = [row for row in rows if row["compressor"] == name]
        chunked_seconds = math.fsum(row["chunked_seconds"] for row in mine)
        unchunked = [row for row in mine if row["unchunked_seconds"] is not None]
        unchunked_seconds = math.fsum(row["unchunked_seconds"] for row in unchunked)
        chunked_bytes = sum(row["raw_bytes"] for row in mine)
        unchunked_bytes = sum(row["raw_bytes"] for row in unchunked)
        summary.append({
            "compressor": name, "device": mine[0]["device"],
            "chunked_seconds": chunked_seconds, "unchunked_seconds": unchunked_seconds,
            "chunked_mb_per_s": chunked_bytes / chunked_seconds / 1e6 if chunked_seconds else None,
            "unchunked_mb_per_s": (unchunked_bytes / unchunked_seconds / 1e6
                                   if unchunked_seconds else None),
            "seconds_per_chunk": {row["dataset"]: row["seconds_per_chunk"] for row in mine},
            "mean_seconds_per_chunk": chunked_seconds / sum(row["num_chunks"] for row in mine),
        })
    return summary


def _cost_seconds(row: dict[str, Any], mode: str) -> float | None:
    """A worker's time for a row's chunked or unchunked work: CPU time on a CPU, so that
    other load on the machine does not inflate it (one worker = one core), wall time on a
    GPU."""
    return row[f"{mode}_cpu_seconds" if row["device"] == "cpu" else f"{mode}_seconds"]


def paper_scale_estimate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hours for this run's compressors × data sets at the paper's 1 GB per data set.

    Chunked work scales with the number of chunks (measured cost per chunk × 488,281);
    unchunked work is extrapolated linearly in bytes (close for the classical codecs, which
    stream their input). Chunked tasks split over any number of workers; one unchunked
    compression cannot, so with N workers the time is at least the longest of those."""
    estimates = []
    for name in dict.fromkeys(row["compressor"] for row in rows):
        mine = [row for row in rows if row["compressor"] == name]
        chunked = sum(_cost_seconds(row, "chunked") / row["num_chunks"] * PAPER_NUM_CHUNKS
                      for row in mine)
        whole = [_cost_seconds(row, "unchunked") / row["raw_bytes"] * PAPER_BYTES
                 for row in mine if row["unchunked_seconds"] is not None]
        estimates.append({"compressor": name, "device": mine[0]["device"],
                          "chunked_hours": chunked / 3600,
                          "unchunked_hours": sum(whole) / 3600 if whole else None,
                          "longest_task_hours": max(whole, default=0.0) / 3600})
    total = {"compressor": "all", "device": "",
             "chunked_hours": sum(item["chunked_hours"] for item in estimates),
             "unchunked_hours": sum(item["unchunked_hours"] or 0.0 for item in estimates),
             "longest_task_hours": max(item["longest_task_hours"] for item in estimates)}
    for item in [*estimates, total]:
        work = item["chunked_hours"] + (item["unchunked_hours"] or 0.0)
        item["hours_by_workers"] = {str(workers): max(work / workers, item["longest_task_hours"])
                                    for workers in ESTIMATE_WORKERS}
    return [*estimates, total]


def _throughput_grid(summary: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    def speed(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "—"

    header = ["compressor", "device", "chunked MB/s", "unchunked MB/s", "ms per chunk",
              "compute s"]
    body = [[item["compressor"], item["device"], speed(item["chunked_mb_per_s"]),
             speed(item["unchunked_mb_per_s"]),
             f"{1e3 * item['mean_seconds_per_chunk']:.2f}",
             f"{item['chunked_seconds'] + item['unchunked_seconds']:.1f}"] for item in summary]
    return header, body


def _estimate_grid(estimate: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["compressor", "chunked", "unchunked",
              *[f"{workers} worker{'s' if workers > 1 else ''}" for workers in ESTIMATE_WORKERS]]
    body = [[item["compressor"], f"{item['chunked_hours']:.2f}",
             "—" if item["unchunked_hours"] is None else f"{item['unchunked_hours']:.2f}",
             *[f"{item['hours_by_workers'][str(workers)]:.2f}" for workers in ESTIMATE_WORKERS]]
            for item in estimate]
    return header, body


def _sections(rows: list[dict[str, Any]], outcome: RunOutcome
              ) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    settings = outcome.plan.settings
    sections = [(f"Chunked rate (%), {settings.chunk_size}-byte chunks, header counted once "
                 "— ours (paper)", _grid(rows, "chunked"))]
    if not all(row["is_model"] for row in rows):
        sections.append(("Unchunked rate (%), all chunks compressed as one — ours (paper)",
                         _grid(rows, "unchunked")))
    if any(row["is_model"] for row in rows):
        sections.append(("Model compressors: rates with the model's size (2 bytes per "
                         "parameter) added", _model_grid(rows)))
    sections.append(("Throughput (compute time in the workers)",
                     _throughput_grid(throughput(rows))))
    sections.append((f"Paper-scale estimate: hours for {PAPER_NUM_CHUNKS:,} chunks (1 GB) per "
                     "data set, from the measured CPU (GPU: wall) time", _estimate_grid(
                         paper_scale_estimate(rows))))
    return sections


def print_report(rows: list[dict[str, Any]], outcome: RunOutcome, console: Console) -> None:
    for title, (header, body) in _sections(rows, outcome):
        table = Table(title=title, title_justify="left")
        for index, column in enumerate(header):
            table.add_column(column, justify="left" if index == 0 else "right",
                             no_wrap=index == 0)
        for line in body:
            table.add_row(*line)
        console.print(table)


NOTES = """\
Notes
- Rates are ℓ_C / raw size in percent; ℓ_C is `code_length_bits`. Chunked rates subtract
  ℓ_C(one zero byte) for all chunks but one (the paper's header-once accounting).
- lzma2 code lengths are raw LZMA2; the paper measured the .xz container with the same
  accounting, which adds about 0.12 point to chunked rates (0.002 point unchunked).
- The paper's numbers are for 1 GB of each data set; a smaller sample differs where the
  data differs (the first MBs of enwik8 vs all of enwik9, a few hundred ImageNet images,
  a few LibriSpeech speakers) and where a whole-file compressor gains from more data
  (unchunked rates fall with size).
- Model compressors code each chunk with a fresh context (the paper's 2048-byte context),
  so they have no separate unchunked rate. The shipped Transformer was trained on the first
  90 % of the enwik8 sample, so its text rate here includes text it trained on; its
  "held out" column, recorded by `gencomp train` on the last 10 %, is the fair number.
  The last column is the paper's Chinchilla 70B (raw, chunked), trained mostly on text:
  the mark for a general-purpose model.
- The estimate assumes the measured per-chunk cost holds on the full data sets and that
  unchunked time grows linearly with size; N workers cannot beat the longest single
  unchunked compression.
"""


def markdown(rows: list[dict[str, Any]], outcome: RunOutcome) -> str:
    settings = outcome.plan.settings
    lines = ["# Compression benchmark (Table 1 of Delétang et al., 2024)", "",
             f"{settings.num_chunks} chunks requested per data set, chunk size "
             f"{settings.chunk_size}, seed {settings.seed}; wall time "
             f"{outcome.wall_seconds:.1f} s ({outcome.executed} tasks run, "
             f"{outcome.reused} reused).", ""]
    for name, info in outcome.plan.data.items():
        source = (f"random bytes, seed {info['location']}" if name == "random"
                  else f"`{info['location']}`")
        lines.append(f"- {dataset_title(name)}: {info['num_chunks']} chunks from {source}")
    for title, (header, body) in _sections(rows, outcome):
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines + ["", NOTES])


CSV_COLUMNS = ("compressor", "dataset", "num_chunks", "raw_bytes", "chunked_rate",
               "paper_chunked", "unchunked_rate", "paper_unchunked", "num_parameters",
               "adjusted_rate", "adjusted_rate_1gb", "paper_adjusted", "held_out_rate",
               "chunked_seconds",
               "chunked_cpu_seconds", "seconds_per_chunk", "chunked_mb_per_s",
               "unchunked_seconds", "unchunked_cpu_seconds",
               "unchunked_mb_per_s", "device", "params")


def _with_paper(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "paper_chunked": paper_rate(row, "chunked"),
            "paper_unchunked": paper_rate(row, "unchunked"),
            "paper_adjusted": paper_rate(row, "adjusted")}


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**_with_paper(row), "params": json.dumps(row["params"])})
    return buffer.getvalue()


#: The widest a bar gets (in data-set groups): with one data set and two compressors,
#: 0.8 / 2 would fill the panel.
MAX_BAR_WIDTH = 0.15


def rates_figure(rows: list[dict[str, Any]]) -> Figure:
    """Grouped bars per data set, chunked and unchunked side by side, the paper's number
    as a black diamond on the bar it belongs to. Each panel centres the compressors it
    has (model compressors have no unchunked rate, and that panel says so); a compressor
    keeps its colour in both."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    compressors = list(dict.fromkeys(row["compressor"] for row in rows))
    lookup = {(row["compressor"], row["dataset"]): row for row in rows}
    models = [name for name in compressors
              if all(lookup[name, dataset]["is_model"] for dataset in datasets)]
    modes = ["chunked"] + (["unchunked"] if len(models) < len(compressors) else [])
    panel_width = 2.5 + 1.5 * len(datasets) * max(1.0, len(compressors) / 4)
    figure = Figure(figsize=(panel_width * len(modes), 4.8))
    axes = figure.subplots(1, len(modes), sharey=True, squeeze=False)[0]
    colors = colormaps["tab10"]
    for axis, mode in zip(axes, modes, strict=True):
        shown = [name for name in compressors if mode == "chunked" or name not in models]
        width = min(MAX_BAR_WIDTH, 0.8 / len(shown))
        for index, name in enumerate(shown):
            positions = [group + (index - (len(shown) - 1) / 2) * width
                         for group in range(len(datasets))]
            ours = [lookup[name, dataset][f"{mode}_rate"] for dataset in datasets]
            bars = [(x, value) for x, value in zip(positions, ours, strict=True)
                    if value is not None]
            if bars:
                axis.bar([x for x, _ in bars], [value for _, value in bars], width,
                         label=name, color=colors(compressors.index(name) % 10))
            paper = [(x, paper_rate(lookup[name, dataset], mode))
                     for x, dataset in zip(positions, datasets, strict=True)]
            paper = [(x, value) for x, value in paper if value is not None]
            if paper:
                axis.scatter([x for x, _ in paper], [value for _, value in paper], marker="D",
                             color="black", s=18, zorder=3, label="paper")
        axis.set_xticks(range(len(datasets)), [dataset_title(name) for name in datasets])
        axis.set_xlim(-0.5, len(datasets) - 0.5)
        title = f"{mode} ({'chunks of 2048 bytes' if mode == 'chunked' else 'one file'})"
        if mode == "unchunked" and models:
            title += f"\nwithout {', '.join(models)}: a model codes 2048-byte chunks only"
        axis.set_title(title, fontsize=10)
        axis.axhline(100, color="gray", linewidth=0.6, linestyle=":")
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("compression rate (%), lower is better")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one "paper" entry
    figure.legend(unique.values(), unique.keys(), loc="upper center", ncol=len(unique),
                  frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    return figure


def figure_png(rows: list[dict[str, Any]]) -> bytes:
    """`rates_figure` as PNG bytes (no pyplot: no global state)."""
    buffer = io.BytesIO()
    rates_figure(rows).savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def write_outputs(output: Path, rows: list[dict[str, Any]], outcome: RunOutcome) -> None:
    """results.json, results.csv, table.md, figure.png; each written atomically."""
    document = {"settings": outcome.plan.settings.to_json(), "data": outcome.plan.data,
                "wall_seconds": outcome.wall_seconds, "tasks_run": outcome.executed,
                "tasks_reused": outcome.reused, "warnings": list(outcome.plan.warnings),
                "rows": [_with_paper(row) for row in rows], "throughput": throughput(rows),
                "paper_scale_estimate": paper_scale_estimate(rows)}
    contents = {"results.json": json.dumps(document, indent=1).encode(),
                "results.csv": csv_text(rows).encode(),
                "table.md": markdown(rows, outcome).encode(), "figure.png": figure_png(rows)}
    for name in OUTPUT_FILES:
        write_output(output / name, contents[name], force=True)
