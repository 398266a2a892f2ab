"""`gencomp train`: train the byte-level Transformer (see `predictors.train`)."""

from __future__ import annotations

import json

import typer

from gencomp.commands.progress import PROGRESS_HELP, on_terminal


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


def train_command(
    data: str = typer.Option(None, help="Training text file; the last 10% is held out. "
                             "Default: ../shared/data/text/enwik8_first_4154400_bytes."),
    size: str = typer.Option(None, help="Model size: 200k, 800k or 3.2m. Default: 200k."),
    steps: int = typer.Option(None, help="Total optimiser steps. Default: 3000."),
    batch_size: int = typer.Option(None, help="Windows per step. Default: 16."),
    seq_len: int = typer.Option(None, help="Window length in bytes. Default: 256."),
    long_steps: int = typer.Option(None, help="Final steps on full-context windows "
                                   "(same bytes per step). Default: 1000."),
    lr: float = typer.Option(None, help="Peak learning rate. Default: 5e-3."),
    warmup_steps: int = typer.Option(None, help="Linear warm-up steps. Default: 200."),
    seed: int = typer.Option(None, help="Seed for initialisation and batches. Default: 0."),
    device: str = typer.Option(None, help="auto, cpu or cuda. Default: auto."),
    threads: int = typer.Option(None, help="CPU threads for torch (0: torch's default)."),
    eval_interval: int = typer.Option(None, help="Steps between quick held-out evals."),
    checkpoint_interval: int = typer.Option(None, help="Steps between checkpoints. "
                                            "Default: 100."),
    mix: str = typer.Option(None, help="Data sets to train on, with weights, e.g. "
                            "text=1,image=1,audio=1 (found as compress-bench finds them; "
                            "every 5th image and utterance is held out). Default: --data."),
    init: str = typer.Option(None, help="Checkpoint (.safetensors) to start from."),
    out: str = typer.Option("outputs/train", help="Run folder: checkpoints, curve, summary."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    progress: bool = typer.Option(on_terminal(), help=PROGRESS_HELP, show_default=False),
) -> None:
    """Train the Transformer predictor; held-out rate is measured with the coding path."""
    from predictors.train import options_for, train

    given = {"data": data, "size": size, "steps": steps, "batch_size": batch_size,
             "seq_len": seq_len, "long_steps": long_steps, "lr": lr,
             "warmup_steps": warmup_steps, "seed": seed, "device": device,
             "threads": threads, "eval_interval": eval_interval,
             "checkpoint_interval": checkpoint_interval, "mix": mix, "init": init}
    summary = train(options_for(out, resume, given), resume=resume, show_progress=progress)
    typer.echo(json.dumps({key: summary[key] for key in
                           ("steps", "tokens", "held_out_bits_per_byte",
                            "held_out_chunked_rate_percent", "train_time_s")}, indent=2))
