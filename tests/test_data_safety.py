"""Issue 20's cases, reproduced: no silently truncated output, containers that cannot choose
workers or memory, workers that die with their parent, no stale temporary files, and
container text that cannot write to the terminal.

Each case runs the real `gencomp` in a subprocess where the operating system's behaviour
is the point (a full disk, a closed pipe, signals, resident memory as the kernel counts
it), in-process otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

import gencomp.fileio
import gencomp.processes
from gencomp import get_compressor
from gencomp.cli import MESSAGE_CHARS, main
from gencomp.container import DIGEST_BYTES, frame
from gencomp.fileio import atomic_open, remove_stale_temporaries
from gencomp.limits import MODEL_MEMORY_ENV, default_output_limit, memory_bytes
from tests.fuzz import (
    HOSTILE_MODELS,
    cpu_seconds,
    frame_v1,
    pack_v1,
    split_container_v1,
    version_1_model_payload,
)
from tests.test_bench_parallel import _live_processes_in_group

GENCOMP = [sys.executable, "-m", "gencomp"]
REPO = Path(__file__).resolve().parent.parent
#: Issue 20's bar: what decoding any crafted container may take.
MAX_RESIDENT_BYTES = 1 << 30


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enwik8_megabyte: bytes) -> Path:
    """A working folder with a 1 MiB text and its fast zstd container."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big").write_bytes(enwik8_megabyte)
    assert main(["compress", "big", "-c", "zstd", "--level", "1", "-o", "big.gcz"]) == 0
    return tmp_path


def run(arguments: list[str], folder: Path, **options) -> subprocess.CompletedProcess:
    """gencomp in a subprocess; stdout and stderr captured unless `options` say otherwise."""
    return subprocess.run([*GENCOMP, *arguments], cwd=folder, timeout=120,
                          **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **options})


def one_line(err: bytes | str) -> str:
    text = err.decode() if isinstance(err, bytes) else err
    assert text.count("\n") == 1 and text.endswith("\n") and "Traceback" not in text, text
    return text


# ---------------------------------------------------------------- 1: every write checked


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 200 KiB tmpfs, issue 20's full disk, where mounting is permitted (as root); None
    where it is not, and the test emulates the disk instead."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs",
                              str(mount_point)], capture_output=True).returncode == 0
    try:
        yield mount_point if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(mount_point)], check=True)


#: Where mounting is not permitted, a child gencomp whose write(2) on stdout behaves as on
#: a full 200 KiB disk: short once it fills, then ENOSPC.
FULL_DISK_CHILD = """
import errno, os, sys
import gencomp.fileio
from gencomp.cli import main
room = [200 << 10]
real_write = os.write
def write(descriptor, data):
    if descriptor != 1:
        return real_write(descriptor, data)
    if room[0] == 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    written = real_write(descriptor, data[:room[0]])
    room[0] -= written
    return written
gencomp.fileio.os.write = write
sys.exit(main(sys.argv[1:]))
"""


def test_stdout_onto_a_full_disk_is_an_error_not_a_truncated_success(
        folder: Path, small_disk: Path | None) -> None:
    """`gencomp decompress big.gcz -o - > small/out` and `cat big | gencomp compress -
    -c gzip > small/c.gcz`: 200 KiB written of 1 MiB used to exit 0."""
    target = small_disk or folder
    command = GENCOMP if small_disk is not None else [sys.executable, "-c", FULL_DISK_CHILD]
    for arguments, stdin, name in ((["decompress", "big.gcz", "-o", "-"], os.devnull, "out"),
                                   (["compress", "-", "-c", "gzip"], "big", "c.gcz")):
        with open(target / name, "wb") as stdout, open(folder / stdin, "rb") as source:
            result = subprocess.run([*command, *arguments], cwd=folder, stdin=source,
                                    stdout=stdout, stderr=subprocess.PIPE, timeout=120)
        assert result.returncode == 2
        assert one_line(result.stderr) == ("gencomp: error: cannot write to stdout: No space "
                                           "left on device\n")
        assert (target / name).stat().st_size <= 200 << 10
        (target / name).unlink()


def test_decompress_onto_dev_full_is_one_line(folder: Path) -> None:
    with open("/dev/full", "wb") as full:
        result = run(["decompress", "big.gcz", "-o", "-"], folder, stdout=full,
                     stderr=subprocess.PIPE)
    assert result.returncode == 2
    assert one_line(result.stderr) == ("gencomp: error: cannot write to stdout: No space left "
                                       "on device\n")


def test_printed_output_onto_dev_full_is_one_line_too(folder: Path) -> None:
    """Text commands (`gencomp list`) print through Python's buffered stdout."""
    with open("/dev/full", "wb") as full:
        result = run(["list"], folder, stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 2 and "No space left" in one_line(result.stderr)


def _close_stdout() -> None:
    os.close(1)


def test_a_closed_stdout_is_an_error_and_never_becomes_a_file(folder: Path) -> None:
    """`>&-`: data for stdout is refused; and a file opened later (the temporary output)
    does not take the free descriptor 1, where a print would land in it."""
    result = run(["decompress", "big.gcz", "-o", "-"], folder, preexec_fn=_close_stdout)
    assert result.returncode == 2 and "stdout is closed" in one_line(result.stderr)
    result = run(["list"], folder, preexec_fn=_close_stdout)
    assert result.returncode == 2 and "stdout is closed" in one_line(result.stderr)
    result = run(["decompress", "big.gcz", "-o", "copy"], folder, preexec_fn=_close_stdout)
    assert result.returncode == 0, result.stderr
    assert (folder / "copy").read_bytes() == (folder / "big").read_bytes()


def test_a_closed_stdin_is_an_error_not_an_empty_input(folder: Path) -> None:
    result = run(["compress", "-", "-o", "empty.gcz"], folder,
                 preexec_fn=lambda: os.close(0))
    assert result.returncode == 2 and "stdin is closed" in one_line(result.stderr)
    assert not (folder / "empty.gcz").exists()


def test_a_pipe_that_closes_early_is_exit_141_with_one_line(folder: Path) -> None:
    """`gencomp decompress big.gcz -o - | head -c 10`, its status as `set -o pipefail`
    sees it."""
    script = 'set -o pipefail; "$@" | head -c 10 > /dev/null'
    result = subprocess.run(["bash", "-c", script, "bash", *GENCOMP, "decompress", "big.gcz",
                             "-o", "-"], cwd=folder, capture_output=True, timeout=120)
    assert result.returncode == 141
    assert one_line(result.stderr) == ("gencomp: error: output pipe closed before all data was "
                                       "written\n")


def test_short_writes_are_continued_and_a_stalled_write_is_an_error(
        folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_write = os.write
    monkeypatch.setattr(gencomp.fileio.os, "write",
                        lambda descriptor, data: real_write(descriptor, data[:1000]))
    assert main(["decompress", "big.gcz", "-o", "copy"]) == 0
    assert (folder / "copy").read_bytes() == (folder / "big").read_bytes()
    monkeypatch.setattr(gencomp.fileio.os, "write", lambda descriptor, data: 0)
    assert main(["decompress", "big.gcz", "-o", "stalled"]) == 2
    assert "no progress" in one_line(capsys.readouterr().err)
    assert sorted(path.name for path in folder.iterdir()) == ["big", "big.gcz", "copy"]


# ---------------------------------------------------------------- 2: parameters are data


def _recording_pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every process pool note its size."""
    sizes: list[int] = []
    real_pool = gencomp.processes.process_pool

    def recorded(workers: int):
        sizes.append(workers)
        return real_pool(workers)

    monkeypatch.setattr(gencomp.processes, "process_pool", recorded)
    return sizes


#: Text the Transformer's torch engine codes in four groups (chunk 64, batch 1): worker
#: processes have a job each.
GROUPED_TEXT = b"A container may not choose how many processes decode it: not 16. " * 4


def test_a_container_cannot_choose_how_many_workers_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: a version-1 container recording `"workers": 16` started 16 processes, and
    with `--workers 2` failed with a TypeError (`workers` given twice). The torch engine is
    the model whose workers are processes (cm's and the kernels' are threads)."""
    monkeypatch.chdir(tmp_path)
    compressor = get_compressor("transformer", engine="torch", chunk_size=64, batch_size=1)
    header, payload = split_container_v1(pack_v1(compressor, GROUPED_TEXT))
    fields = json.loads(header)
    fields["params"]["workers"] = 16
    Path("sixteen.gcz").write_bytes(frame_v1(json.dumps(fields).encode(), payload))
    pools = _recording_pools(monkeypatch)
    assert main(["decompress", "sixteen.gcz", "-o", "one"]) == 0
    assert pools == []
    assert main(["decompress", "sixteen.gcz", "-o", "two", "--workers", "2"]) == 0
    assert pools == [2]
    assert Path("one").read_bytes() == Path("two").read_bytes() == GROUPED_TEXT


def test_decompress_takes_only_runtime_parameters(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    container = tmp_path / "cm.gcz"
    container.write_bytes((REPO / "tests/data/v1_cm.gcz").read_bytes())
    for assignment in ("order=5", "device=cuda"):
        assert main(["decompress", str(container), "-o", str(tmp_path / "out"), "--param",
                     assignment]) == 2
        assert "records how it was coded" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 3: memory budgets


#: Runs its arguments as a child and prints the child's peak resident memory in KiB. The
#: kernel carries a process's peak over `exec` from the process that forked it, so a child
#: started straight from this (large) test process would report the test's own size.
MEASURE_PEAK = ("import resource, subprocess, sys; "
                "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
                "sys.exit(code)")


def run_measured(arguments: list[str], folder: Path) -> tuple[int, str, int]:
    """Run gencomp; its exit code, stderr and peak resident memory in bytes, the kernel's
    count for the process and everything it waited for (what `/usr/bin/time -v` reads),
    started from a small launcher so that none of this test process's memory is counted."""
    done = subprocess.run([sys.executable, "-c", MEASURE_PEAK, *GENCOMP, *arguments],
                          cwd=folder, capture_output=True, timeout=120)
    return done.returncode, done.stderr.decode(), int(done.stdout) << 10  # Linux counts KiB


@pytest.mark.parametrize("case", HOSTILE_MODELS, ids=HOSTILE_MODELS)
def test_crafted_model_containers_are_refused_in_bounded_memory(case: str, tmp_path: Path
                                                                ) -> None:
    """Issue 20: a 1.6 KB cm container asked numpy for 40 GiB; a 473-byte one reached
    4.4 GB resident before failing."""
    (tmp_path / "crafted.gcz").write_bytes(HOSTILE_MODELS[case].container())
    code, err, resident = run_measured(["decompress", "crafted.gcz", "-o", "out"], tmp_path)
    assert code == 2 and "model memory limit" in one_line(err)
    assert resident < MAX_RESIDENT_BYTES, f"{resident >> 20} MiB"
    assert not (tmp_path / "out").exists()


def test_the_model_memory_budget_is_the_users_to_change(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """cm's model of a whole stream takes 155 MiB: under the default budget, over a lowered
    one, which refuses it before allocating, to compress and to decompress."""
    data, packed = tmp_path / "data", tmp_path / "data.gcz"
    data.write_bytes(b"the budget is the user's to change " * 30)
    assert main(["compress", str(data), "-c", "cm", "-o", str(tmp_path / "low.gcz"),
                 "--max-memory", "64M"]) == 2
    assert "model memory limit of 64 MiB" in one_line(capsys.readouterr().err)
    assert main(["compress", str(data), "-c", "cm", "-o", str(packed)]) == 0
    assert main(["decompress", str(packed), "-o", str(tmp_path / "low"),
                 "--max-memory", "64M"]) == 2
    assert "model memory limit of 64 MiB" in one_line(capsys.readouterr().err)
    assert main(["decompress", str(packed), "-o", str(tmp_path / "restored")]) == 0
    assert (tmp_path / "restored").read_bytes() == data.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "data.gcz",
                                                                "restored"]
    assert os.environ.get(MODEL_MEMORY_ENV) is None  # the option's setting ends with it


def test_the_default_output_limit_fits_the_machine(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A quarter of the memory /proc/meminfo reports (or the cgroup's, if lower)."""
    total = next(int(line.split()[1]) << 10 for line in open("/proc/meminfo")
                 if line.startswith("MemTotal:"))
    assert memory_bytes() <= total and default_output_limit() == memory_bytes() // 4
    declared = default_output_limit() + 1
    (tmp_path / "big.gcz").write_bytes(frame("gzip", {}, declared, bytes(DIGEST_BYTES), b""))
    assert main(["decompress", str(tmp_path / "big.gcz"), "-o", str(tmp_path / "out")]) == 2
    assert f"declares {declared} bytes" in one_line(capsys.readouterr().err)


#: More zeros than the resident-memory bar, in a zstd frame that declares them.
BOMB_BYTES = MAX_RESIDENT_BYTES + (256 << 20)


@pytest.fixture(scope="module")
def zstd_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.25 GiB of zeros in ~40 KB of zstd, made a mebibyte at a time."""
    zeros = bytes(1 << 20)
    stream = zstandard.ZstdCompressor(level=3).compressobj(size=BOMB_BYTES)
    digest = hashlib.sha256()
    parts = []
    for _ in range(BOMB_BYTES >> 20):
        parts.append(stream.compress(zeros))
        digest.update(zeros)
    payload = b"".join(parts) + stream.flush()
    path = tmp_path_factory.mktemp("bomb") / "zeros.gcz"
    path.write_bytes(frame("zstd", {}, BOMB_BYTES, digest.digest()[:DIGEST_BYTES], payload))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("output", ["file", "stdout"])
def test_a_container_that_expands_past_a_gibibyte_decodes_in_bounded_memory(
        output: str, zstd_bomb: Path, tmp_path: Path) -> None:
    """Issue 20: decoded output was held in memory, so 1.25 GiB of zeros in 41 KB of zstd
    took 1.4 GiB; now it goes out a piece at a time (to stdout once it is verified)."""
    target = "-" if output == "stdout" else str(tmp_path / "zeros")
    code, err, resident = run_measured(["decompress", str(zstd_bomb), "-o", target,
                                        "--max-output", "2G"], tmp_path)
    assert (code, err) == (0, "")
    assert resident < MAX_RESIDENT_BYTES // 4, f"{resident >> 20} MiB"
    if output == "file":
        assert (tmp_path / "zeros").stat().st_size == BOMB_BYTES


# ---------------------------------------------------------------- 4: workers die with us


def _our_workers(group: int) -> list[int]:
    """The pool workers (spawned interpreters) among a process group's live processes."""
    workers = []
    for pid in _live_processes_in_group(group):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn" in command or b"spawn_main" in command:
            workers.append(pid)
    return workers


#: A run with worker processes: the Transformer's torch engine (cm and the CPU kernels
#: code in threads), 2 KiB chunks in groups of 2, seconds of coding for two workers.
WORKER_RUN = ["-c", "transformer", "--param", "engine=torch", "--param", "chunk_size=2048",
              "--param", "batch_size=2"]


@pytest.fixture(scope="module")
def worker_folder(tmp_path_factory: pytest.TempPathFactory, enwik8_path: Path) -> Path:
    """16 KiB of text, and a container of it for the torch engine in 4 groups whose chunks
    a hostile encoder coded (instant to make; decoding it is the real model's work on every
    byte, and ends in a CRC mismatch if it is let finish)."""
    folder = tmp_path_factory.mktemp("stop")
    with open(enwik8_path, "rb") as source:
        text = source.read(16 << 10)
    (folder / "text").write_bytes(text)
    fingerprint = get_compressor("transformer", engine="torch").predictor.fingerprint
    payload = version_1_model_payload("transformer", fingerprint, text, 2048, 2)
    (folder / "text.gcz").write_bytes(frame("transformer", {"engine": "torch"}, len(text),
                                            hashlib.sha256(text).digest()[:DIGEST_BYTES],
                                            payload))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_no_process_of_ours_outlives_a_stopped_run(stop: int, command: str,
                                                   worker_folder: Path) -> None:
    """Issue 20: after `kill -TERM` the two workers (and the resource tracker) stayed for
    10+ minutes, holding the stdout pipe; SIGKILL left the same orphans."""
    folder = worker_folder
    output = folder / f"out-{command}-{stop}"
    arguments = (["compress", "text", *WORKER_RUN] if command == "compress"
                 else ["decompress", "text.gcz"])
    process = subprocess.Popen([*GENCOMP, *arguments, "--workers", "2", "-o", str(output)],
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # Both workers have loaded torch and the model (a second and more of CPU) and code.
        while time.monotonic() < deadline and not (
                len(workers := _our_workers(process.pid)) == 2
                and min(map(cpu_seconds, workers)) > 1.5):
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be stopped"
        assert len(_our_workers(process.pid)) == 2
        os.kill(process.pid, stop)
        stopped = time.monotonic()
        while _live_processes_in_group(process.pid) and time.monotonic() - stopped < 5:
            time.sleep(0.05)
        assert _live_processes_in_group(process.pid) == []
    finally:  # a failure must not leave the survivors running
        for pid in _live_processes_in_group(process.pid):
            os.kill(pid, signal.SIGKILL)
    err = process.stderr.read().decode()
    assert process.wait(timeout=10) == (143 if stop == signal.SIGTERM else -signal.SIGKILL)
    if stop == signal.SIGTERM:  # (after SIGKILL, multiprocessing may note leaked semaphores)
        assert one_line(err) == "gencomp: terminated\n"
    assert not output.exists()
    if stop == signal.SIGKILL:  # a decoder killed mid-write leaves its temporary output,
        remove_stale_temporaries(output)  # which the next run writing there removes
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]


# ---------------------------------------------------------------- 5: temporaries and text


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(tmp_path: Path) -> None:
    """A writer SIGKILLed inside `atomic_open` leaves its temporary file; the next run that
    writes the same output removes it, and never a live writer's or another name's."""
    output = tmp_path / "out.gcz"
    child = ("import os, signal, sys\nfrom gencomp.fileio import atomic_open\n"
             "with atomic_open(sys.argv[1]) as handle:\n"
             "    handle.write(b'half')\n    handle.flush()\n"
             "    os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", child, str(output)],
                          timeout=60).returncode == -signal.SIGKILL
    (stale,) = tmp_path.iterdir()
    pid = re.search(r"-(\d+)\.\w+\.tmp$", stale.name).group(1)
    kept = [tmp_path / stale.name.replace(f"-{pid}.", f"-{os.getpid()}."),  # a live writer
            tmp_path / stale.name.replace("out.gcz", "other.gcz"),  # another output's
            tmp_path / ".out.gcz.abc.tmp"]  # not our naming
    for path in kept:
        path.write_bytes(b"")
    assert main(["compress", str(tmp_path / "other.gcz"), "-o", str(output)]) == 2  # no input
    assert stale.exists()  # a failed run has written nothing and removed nothing
    (tmp_path / "input").write_bytes(b"complete")
    assert main(["compress", str(tmp_path / "input"), "-o", str(output)]) == 0
    assert not stale.exists() and all(path.exists() for path in kept)
    assert remove_stale_temporaries(output) == []


def test_temporary_names_carry_this_host_and_process(tmp_path: Path) -> None:
    with atomic_open(tmp_path / "x") as handle:
        (temporary,) = tmp_path.iterdir()
        handle.write(b"x")
    host = re.sub(r"[^A-Za-z0-9]+", "_", socket.gethostname())[:32]
    assert re.fullmatch(rf"\.x\.{re.escape(host)}-{os.getpid()}\.\w+\.tmp", temporary.name)


ANSI = "\x1b[31mred\x1b]0;title\x07\u202e"


@pytest.mark.parametrize("version", [1, 2])
def test_container_text_reaches_the_terminal_escaped_and_short(
        version: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Escape codes in a container's compressor name or parameter keys are shown, not sent;
    a 60 KB name is a short line."""
    payload = get_compressor("gzip").compress(b"x")
    digest = hashlib.sha256(b"x").digest()
    cases = {"name": (ANSI, {}), "key": ("gzip", {ANSI: 1}), "long": ("n" * 60_000, {})}
    for label, (name, params) in cases.items():
        if version == 2 and label == "long":
            name = "n" * 255  # a u8 length
        container = (frame(name, params, 1, digest[:DIGEST_BYTES], payload) if version == 2
                     else frame_v1(json.dumps({"compressor": name, "params": params,
                                               "original_length": 1,
                                               "original_sha256": digest.hex()}).encode(),
                                   payload))
        (tmp_path / f"{label}.gcz").write_bytes(container)
        assert main(["decompress", str(tmp_path / f"{label}.gcz"), "-o",
                     str(tmp_path / label)]) == 2
        err = one_line(capsys.readouterr().err)
        assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
        assert len(err) <= MESSAGE_CHARS + len("gencomp: error: \n")
        if label != "long":
            assert "\\x1b[31m" in err, err


def test_the_error_printer_escapes_any_message(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One place makes every error line safe, whatever raised it."""
    from gencomp.errors import UsageError

    def hostile(path: str) -> bytes:
        raise UsageError(f"cannot read {ANSI}{'x' * 10_000}")

    monkeypatch.setattr("gencomp.commands.codec.read_input", hostile)
    assert main(["decompress", "anything.gcz", "-o", "out"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "\x1b" not in err and err.endswith("...\n")
    assert len(err) == MESSAGE_CHARS + len("gencomp: error: \n")
