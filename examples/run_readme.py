"""Run the README's shell commands as a newcomer would: top to bottom, as written, in a
fresh clone with the data beside it (../shared/data).

    python examples/run_readme.py             # the commands not marked as long; lists the rest
    python examples/run_readme.py --all       # the long ones too (hours)
    python examples/run_readme.py --list      # only say what would run and what would not

The clone is of this checkout's last commit, in a temporary folder beside a link to the
data (`--keep DIR` keeps it in DIR instead). Commands run with bash in the clone's root, one
at a time, in README order; a variable a command sets (`P="--prompt ..."`) carries on to
the commands after it. Each must succeed within `--timeout` seconds (default 120: the
README promises that no example runs longer than two minutes on its machine without
saying so). Each command's time and exit code are printed; the script exits 1 if any
failed.

Not run, but listed with the reason why:
- a command whose comment gives its time in minutes or hours ("# 5 min here"): long;
- `pip install` steps, which change the environment (`.ci/run` runs them in a fresh one);
  in `pip install ... && gencomp ...` the rest of the line runs;
- commands for other machines (a Dask scheduler or workers, `tcp://` addresses).

With `--all` the long commands run too, and what they make is compared with what the README
shows: the curated gallery's files byte for byte with the committed ones, and Table 1's
numbers with the rates of `gencomp compress-bench --num-chunks 2000`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
#: A comment that says how long a command takes: "(5 min here)", "# about 2 hours".
LONG = re.compile(r"\b\d+(\.\d+)?\s*(min|minutes?|h|hours?)\b")
CURATED = Path("outputs") / "curated"


@dataclass(frozen=True)
class Command:
    """One command of a README code block: the shell text (or a whole Python block), its
    comment, and the line it starts on."""

    text: str
    comment: str
    line: int
    language: str = "bash"

    @property
    def assignment(self) -> bool:
        """`NAME=value` alone: sets a variable for the commands after it."""
        return self.language == "bash" and len(shlex.split(self.text)) == 1 \
            and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S.*", self.text) is not None

    def skip_reason(self) -> str | None:
        """Why this command is not run by default, or None."""
        if "tcp://" in self.text or self.text.startswith("dask "):
            return "needs a Dask cluster (other machines)"
        if LONG.search(self.comment):
            return f"long: {self.comment}"
        if self.runnable_part() is None:
            return "installs packages (.ci/run does this in a fresh environment)"
        return None

    def runnable_part(self) -> str | None:
        """The command without its leading `pip install ... &&` steps (None if nothing is
        left)."""
        steps = [step.strip() for step in self.text.split("&&")]
        while steps and steps[0].startswith("pip install"):
            steps.pop(0)
        return " && ".join(steps) if steps else None


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of a shell line: the comment starts at a `#` outside quotes that
    begins a word."""
    quote = None
    for index, character in enumerate(line):
        if quote:
            quote = None if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1:].strip()
    return line.rstrip(), ""


def readme_commands(readme: str) -> list[Command]:
    """Every command of the README's ```bash blocks (lines ending in a backslash joined to
    the next) and every ```python block as one command, in order."""
    commands, language, pending, start, python = [], None, "", 0, []
    for number, line in enumerate(readme.splitlines(), 1):
        if line.startswith("```"):
            if language == "python":
                commands.append(Command("\n".join(python), "", start, "python"))
            language = line.strip()[3:] or None if language is None else None
            python, start = [], number + 1
            continue
        if language == "python":
            python.append(line)
            continue
        if language != "bash":
            continue
        code, comment = split_comment(line)
        if not pending:
            start = number
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        text = (pending + code).strip()
        pending = ""
        if text:
            commands.append(Command(" ".join(text.split()), comment, start))
    return commands


def fresh_clone(folder: Path) -> Path:
    """A clone of this checkout's last commit in folder/gencomp, with folder/shared linking
    to the data, so that ../shared/data works from the clone as from the checkout."""
    clone = folder / "gencomp"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    data = (REPO.parent / "shared").resolve()
    (folder / "shared").symlink_to(data)
    return clone


def run_command(command: Command, prelude: list[str], folder: Path, timeout: float,
                code: Path | None = None) -> tuple[int, float]:
    """Run one command in `folder` after the variable assignments before it, with the
    gencomp of `code` (default: the folder's own); (exit code, seconds)."""
    if command.language == "python":
        arguments = [sys.executable, "-c", command.text]
    else:
        arguments = ["bash", "-c", "\n".join([*prelude, "set -o pipefail",
                                              command.runnable_part() or ""])]
    environment = {**os.environ, "PYTHONPATH": str(code or folder)}  # not an installed one
    started = time.perf_counter()
    try:
        result = subprocess.run(arguments, cwd=folder, env=environment,
                                timeout=timeout, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        return 124, time.perf_counter() - started
    if result.returncode:
        print(result.stderr.strip()[-2000:], file=sys.stderr)
    return result.returncode, time.perf_counter() - started


#: The README's Table 1 columns, by data set.
TABLE_COLUMNS = {"enwik9": "text", "ImageNet": "image", "LibriSpeech": "audio", "Random": "random"}
TABLE1_COMMAND = "gencomp compress-bench --num-chunks 2000"


def table1_differences(readme: str, rows: list[dict]) -> list[str]:
    """Every cell of the README's measured Table 1 (the tables headed "chunked" and
    "unchunked"; "ours (paper)" or "a / b / c" for several compressors) whose number is not
    the run's rate rounded to one decimal; and a note if no cell was found."""
    rates = {(row["compressor"], row["dataset"], mode): row.get(f"{mode}_rate")
             for row in rows for mode in ("chunked", "unchunked")}
    differences, checked, mode, columns = [], 0, None, []
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            mode = None
        elif cells[0] in ("chunked", "unchunked"):
            mode, columns = cells[0], [TABLE_COLUMNS.get(cell) for cell in cells[1:]]
        elif mode and not set(cells[0]) <= set("-: "):
            names = [name.strip() for name in cells[0].split("/")]
            for dataset, cell in zip(columns, cells[1:], strict=False):
                ours = [part.split("(")[0].strip() for part in cell.split("/")]
                for name, shown in zip(names, ours, strict=False):
                    measured = rates.get((name, dataset, mode))
                    checked += 1
                    if measured is None or f"{measured:.1f}" != shown:
                        differences.append(f"{mode} {name} {dataset}: README {shown}, "
                                           f"measured {measured}")
    return differences if checked else ["no Table 1 cells found in the README"]


def curated_files(clone: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((clone / CURATED).iterdir())
            if path.suffix in (".png", ".wav", ".md") and path.name != "screenshot.png"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="Run the long commands too.")
    parser.add_argument("--list", action="store_true", help="Only list the plan.")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="Seconds a command may take (default 120).")
    parser.add_argument("--keep", type=Path, help="Clone into this new folder and keep it.")
    options = parser.parse_args()

    commands = readme_commands(README.read_text(encoding="utf-8"))
    plan = []
    for command in commands:
        reason = None if command.assignment else command.skip_reason()
        if options.all and reason and reason.startswith("long"):
            reason = None
        plan.append((command, reason))
    for command, reason in plan:
        shown = command.text if command.language == "bash" else \
            f"python: {command.text.splitlines()[0]} ..."
        print(f"README:{command.line:<4} {'skip' if reason else 'run '}  {shown}"
              + (f"\n             ({reason})" if reason else ""))
    if options.list:
        return 0

    with tempfile.TemporaryDirectory(prefix="readme-") as scratch:
        folder = options.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        clone = fresh_clone(folder)
        committed = curated_files(clone)
        prelude: list[str] = []
        failures = 0
        for command, reason in plan:
            if command.assignment:
                prelude.append(command.text)
                continue
            if reason:
                continue
            code, seconds = run_command(command, prelude, clone, options.timeout)
            failures += code != 0
            if command.text == TABLE1_COMMAND and code == 0:
                newest = max((clone / "outputs" / "bench").glob("*/results.json"),
                             key=lambda path: path.stat().st_mtime)
                differences = table1_differences(README.read_text(encoding="utf-8"),
                                                 json.loads(newest.read_text())["rows"])
                print("Table 1: " + ("; ".join(differences) if differences
                                     else "every cell as measured"))
                failures += bool(differences)
            status = "ok" if code == 0 else ("TIMEOUT" if code == 124 else f"exit {code}")
            print(f"{seconds:7.1f} s  {status:8} README:{command.line}  "
                  f"{command.text.splitlines()[0]}", flush=True)
        if options.all:  # the curated gallery was remade by the README's render command
            remade = curated_files(clone)
            differing = sorted(name for name in committed if remade.get(name) != committed[name])
            print("curated gallery: " + (f"differs in {', '.join(differing)}" if differing
                                         else "identical to the committed files"))
            failures += bool(differing)
    print(f"{failures} failed" if failures else "every command that ran succeeded")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
