"""The README's commands stay true: every shell command parses as written (each `gencomp`
call with options the CLI has, each script it runs exists), the quick blocks run in a
fresh folder beside the data, and `examples/run_readme.py` classifies what it would not
run. The whole README runs with `python examples/run_readme.py` (minutes, not in CI)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from gencomp.cli import app

REPO = Path(__file__).resolve().parent.parent


def _runner():
    spec = importlib.util.spec_from_file_location("run_readme", REPO / "examples" /
                                                  "run_readme.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_readme"] = module
    spec.loader.exec_module(module)
    return module


run_readme = _runner()
COMMANDS = run_readme.readme_commands((REPO / "README.md").read_text(encoding="utf-8"))


def _expanded(segment: str, prelude: list[str]) -> list[str]:
    """`segment`'s words as bash passes them (variables expanded), redirections dropped."""
    segment = re.sub(r"\s[12]?>\s*\S+", "", segment)
    script = "\n".join([*prelude, f"printf '%s\\0' {segment}"])
    words = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return words.decode().split("\0")[:-1]


def _parse_gencomp(arguments: list[str]) -> None:
    """Parse a gencomp command line as the CLI would, without running it."""
    group = typer.main.get_command(app)
    context = group.make_context("gencomp", arguments, resilient_parsing=False)
    rest = getattr(context, "_protected_args", None)
    rest = [*(context.protected_args if rest is None else rest), *context.args]
    name, command, remaining = group.resolve_command(context, rest)
    command.make_context(name, remaining, parent=context)


def test_every_readme_command_parses_as_written() -> None:
    prelude: list[str] = []
    gencomp_calls = scripts = 0
    for command in COMMANDS:
        if command.language == "python":
            compile(command.text, f"README.md:{command.line}", "exec")
            continue
        if command.assignment:
            prelude.append(command.text)
            continue
        subprocess.run(["bash", "-n", "-c", command.text], check=True)
        for segment in re.split(r"\s(?:\|\||&&|\|)\s", command.text):
            words = _expanded(segment, prelude)
            if words[0] == "gencomp":
                _parse_gencomp(words[1:])
                gencomp_calls += 1
            elif words[0] == "python" and words[1] != "-m":
                assert (REPO / words[1]).is_file(), f"README:{command.line}: {words[1]}"
                scripts += 1
            elif words[:2] == ["python", "-m"] and words[2] != "pytest":
                assert (REPO / (words[2].replace(".", "/") + ".py")).is_file(), words[2]
    assert gencomp_calls >= 20 and scripts >= 5  # a floor: parsing cannot silently stop


def test_the_runner_says_what_it_would_not_run() -> None:
    Command = run_readme.Command
    assert Command("gencomp render", "(5 min here)", 1).skip_reason().startswith("long")
    assert Command("python -m pytest", "about 2 h", 1).skip_reason().startswith("long")
    assert Command("dask scheduler --port 8786", "machine A", 1).skip_reason()
    assert Command("pip install -e .", "", 1).skip_reason().startswith("installs")
    chained = Command("pip install torch && pip install -e . && gencomp list", "", 1)
    assert chained.skip_reason() is None and chained.runnable_part() == "gencomp list"
    assert Command("gencomp list", "compressors (2.5 s)", 1).skip_reason() is None
    assert [(c.text, c.comment) for c in run_readme.readme_commands(
        "```bash\ngencomp a \\\n  --b 'x # y'  # note\n```\n")] == [
        ("gencomp a --b 'x # y'", "note")]


def _block(first_line: str) -> list:
    """The commands of the README block that starts with `first_line`'s command."""
    start = next(index for index, command in enumerate(COMMANDS)
                 if command.text.startswith(first_line))
    block = [COMMANDS[start]]
    for command in COMMANDS[start + 1:]:
        if command.line > block[-1].line + 2 or command.language != block[-1].language:
            break
        block.append(command)
    return block


@pytest.mark.parametrize("first_line", ["cp ../shared/data", "from gencomp import"])
def test_the_quick_blocks_run_in_a_fresh_folder(first_line: str, tmp_path: Path,
                                                data_dir: Path) -> None:
    """The Usage block and the Python example, as a newcomer types them: in a checkout
    with ../shared/data beside it (here a new folder with the README and outputs/)."""
    folder = tmp_path / "work" / "gencomp"
    (folder / "outputs").mkdir(parents=True)
    shutil.copy(REPO / "README.md", folder)
    (tmp_path / "work" / "shared").mkdir()
    os.symlink(data_dir.resolve(), tmp_path / "work" / "shared" / "data")
    for command in _block(first_line):
        code, _ = run_readme.run_command(command, [], folder, timeout=60, code=REPO)
        assert code == 0, f"README:{command.line}: {command.text}"
    if first_line.startswith("cp"):
        assert (folder / "outputs" / "copy").read_bytes() == \
            (folder / "outputs" / "alice29.restored").read_bytes() == \
            (data_dir / "text" / "canterbury" / "alice29.txt").read_bytes()
