"""The import rules of layers.toml hold: every import of ours (in functions too) is allowed,
and no module imports itself through others. The checker is tested on trees that break
the rules, so that it can fail."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gencomp", "samplers", "predictors")


def module_names(root: Path) -> dict[str, Path]:
    """Our modules under `root`, by dotted name (a package by its __init__)."""
    names = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that `path` (module `name`) imports, anywhere in its body."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            # `from a import b` imports module a.b when there is one, else a name of a.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target.split(".")[0] in PACKAGES}
    found.discard(name)
    return found


def _covers(entry: str, module: str) -> bool:
    return module == entry or module.startswith(entry + ".")


def violations(root: Path, rules_text: str) -> list[str]:
    """Every import that layers.toml does not allow, every module it does not place, and
    every import cycle, as one line each."""
    config = tomllib.loads(rules_text)
    groups, rules = config.get("groups", {}), config["rules"]

    def allowed(rule: list[str]) -> list[str]:
        return [item for entry in rule
                for item in (groups[entry[1:]] if entry.startswith("@") else [entry])]

    modules = module_names(root)
    graph = {name: imports_of(path, name, modules) for name, path in modules.items()}
    problems = []
    for name, targets in sorted(graph.items()):
        owners = [entry for entry in rules if _covers(entry, name)]
        if not owners:
            problems.append(f"{name}: no rule in layers.toml places this module")
            continue
        permitted = allowed(rules[max(owners, key=len)])
        for target in sorted(targets):
            if "*" not in permitted and not any(_covers(entry, target) for entry in permitted):
                problems.append(f"{name} imports {target}, which layers.toml does not allow")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (depth-first search)."""
    found, state = [], dict.fromkeys(graph, 0)  # 0 unvisited, 1 on the path, 2 done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target):], target])
            elif state.get(target) == 0:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if state[name] == 0:
            visit(name)
    return found


def test_the_project_keeps_its_import_rules() -> None:
    assert violations(ROOT, (ROOT / "layers.toml").read_text()) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


RULES = """
[groups]
core = ["gencomp.errors"]
[rules]
"gencomp" = ["@core"]
"gencomp.errors" = []
"gencomp.codecs" = ["gencomp.codecs", "@core"]
"samplers" = ["samplers", "@core"]
"predictors" = ["predictors", "@core"]
"""


def test_a_forbidden_import_inside_a_function_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "gencomp/errors.py": "",
        "gencomp/codecs/__init__.py": "",
        "gencomp/codecs/png.py": "from gencomp.errors import *\n",
        "samplers/bad.py": "def f():\n    from gencomp.codecs import png\n",
    })
    assert violations(root, RULES) == [
        "samplers.bad imports gencomp.codecs.png, which layers.toml does not allow"]


def test_a_cycle_and_an_unplaced_module_are_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "gencomp/errors.py": "import predictors.a\n",
        "predictors/a.py": "import gencomp.errors\n",
        "gencomp/unplaced/__init__.py": "",
    })
    problems = violations(root, RULES.replace('"gencomp" = ["@core"]\n', ""))
    assert "gencomp.errors imports predictors.a, which layers.toml does not allow" in problems
    assert "gencomp: no rule in layers.toml places this module" in problems
    assert "gencomp.unplaced: no rule in layers.toml places this module" in problems
    assert "import cycle: gencomp.errors -> predictors.a -> gencomp.errors" in problems


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys; {statement}; print('\\n'.join(name for name in sys.modules "
            "if name.startswith(('gencomp.codecs.', 'predictors.'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    return result.stdout.split()


def test_importing_samplers_or_the_interface_loads_no_codec_or_predictor() -> None:
    assert _loaded_after("import samplers") == []
    assert _loaded_after("import gencomp.compressor") == []
    assert _loaded_after("from gencomp import get_compressor; get_compressor('gzip')") == [
        "gencomp.codecs.bytestream"]


#: What a command that needs none of them must not import: each costs 0.02-3 s of start-up
#: (pydantic comes with typer 0.29, which pyproject.toml therefore excludes; http with
#: urllib.request).
HEAVY_LIBRARIES = ("torch", "matplotlib", "dask", "numba", "pydantic", "PIL", "soundfile",
                   "http")


@pytest.mark.parametrize("command", ["list", "compress-gzip", "compress-transformer"])
def test_light_commands_import_no_heavy_library(command: str, tmp_path: Path) -> None:
    """(The Transformer's kernels run as their ahead-of-time build, `transformer_native`.)"""
    (tmp_path / "small.txt").write_bytes(b"a small file to compress " * 40)
    small = str(tmp_path / "small.txt")
    arguments = {"list": ["list"], "compress-gzip": ["compress", "-c", "gzip", small],
                 "compress-transformer": ["compress", "-c", "transformer", small]}
    code = ("import sys\nfrom gencomp.cli import main\n"
            f"code = main({arguments[command]!r})\n"
            "print(code, sorted({name.split('.')[0] for name in sys.modules} & "
            f"set({HEAVY_LIBRARIES!r})))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result
