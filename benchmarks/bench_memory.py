"""What decoding a container may take: peak resident memory and worker processes of
`gencomp decompress` on crafted containers, beside honest ones, as `/usr/bin/time -v`
reports them; and how long any process of ours outlives a stopped `--workers 2` run.

    python benchmarks/bench_memory.py

Issue 20's bar: no crafted container makes decompression use more than 1 GiB resident
or start more workers than `--workers` asked for; after SIGTERM or SIGKILL of a
`--workers 2` run, no process of ours remains within 5 seconds. The crafted containers
are tests/fuzz.py's HOSTILE_MODELS (model tables or caches of 1 to 40 GiB declared by a
few hundred bytes), a container that records `"workers": 16`, one that declares 2^40
bytes of output, and 1.25 GiB of zeros in 41 KB of zstd, which decodes a piece at a time
into the output file (`Compressor.decompress_pieces`), so it takes tens of MiB, not what
it declares.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from machine import cpu_model  # noqa: E402

from gencomp import get_compressor  # noqa: E402
from gencomp.container import DIGEST_BYTES, frame, pack  # noqa: E402
from tests.conftest import shared_data_dir  # noqa: E402
from tests.fuzz import (  # noqa: E402
    HOSTILE_MODELS,
    cpu_seconds,
    frame_v1,
    pack_v1,
    split_container_v1,
    version_1_model_payload,
)

GENCOMP = [sys.executable, "-m", "gencomp"]
REPO = Path(__file__).resolve().parent.parent


def _group_processes(group: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of the live processes of a process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append((int(stat.parent.name), command))
    return found


def _workers(group: int) -> int:
    return sum(b"spawn_main" in command for _, command in _group_processes(group))


def measure(arguments: list[str], folder: Path) -> dict:
    """Run gencomp under /usr/bin/time -v: exit code, peak resident MiB, seconds, the most
    worker processes seen at once (the process group sampled every 20 ms)."""
    process = subprocess.Popen(["/usr/bin/time", "-v", *GENCOMP, *arguments], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    most_workers = 0
    while process.poll() is None:
        most_workers = max(most_workers, _workers(process.pid))
        time.sleep(0.02)
    report = process.stderr.read()
    number = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", report)
    hours, minutes, seconds = wall.groups()
    message = next((line for line in report.splitlines() if line.startswith("gencomp:")), "")
    return {"exit": re.search(r"Exit status: (\d+)", report).group(1),
            "resident_mib": int(number.group(1)) / 1024,
            "seconds": int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds),
            "workers": most_workers, "message": message[:70]}


#: A run with worker processes: the torch engine, 2 KiB chunks in groups of 2.
WORKER_RUN = ["-c", "transformer", "--param", "engine=torch", "--param", "chunk_size=2048",
              "--param", "batch_size=2"]
WORKERS_16 = 'transformer (torch) recording "workers": 16'


def stop_time(arguments: list[str], folder: Path, stop: int) -> tuple[float, int]:
    """Start a --workers 2 run, send `stop` once both workers have loaded the model and
    code (1.5 s of CPU each), and return the seconds until no process of its group
    remains, and the exit code."""
    process = subprocess.Popen([*GENCOMP, *arguments, "--workers", "2"], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    while process.poll() is None:
        workers = [pid for pid, command in _group_processes(process.pid)
                   if b"spawn_main" in command]
        if len(workers) == 2 and min(map(cpu_seconds, workers)) > 1.5:
            break
        time.sleep(0.02)
    if process.poll() is not None:
        raise SystemExit("the run ended before it could be stopped: give it more data")
    os.kill(process.pid, stop)
    stopped = time.monotonic()
    while _group_processes(process.pid) and time.monotonic() - stopped < 60:
        time.sleep(0.01)
    return time.monotonic() - stopped, process.wait()


#: An output bomb within the default output limit: decoded in pieces, it should take a
#: small fraction of what it declares.
BOMB_BYTES = 5 << 28


def _zeros_bomb() -> bytes:
    """A container of BOMB_BYTES zeros coded by zstd (a few tens of KB), made a MiB at a
    time."""
    compressor = zstandard.ZstdCompressor(level=1).compressobj(size=BOMB_BYTES)
    digest, block, parts = hashlib.sha256(), bytes(1 << 20), []
    for _ in range(BOMB_BYTES >> 20):
        parts.append(compressor.compress(block))
        digest.update(block)
    parts.append(compressor.flush())
    return frame("zstd", {"level": 1}, BOMB_BYTES, digest.digest()[:DIGEST_BYTES],
                 b"".join(parts))


def main() -> None:
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.1f}")
    text = (shared_data_dir() / "text" / "enwik8_first_4154400_bytes").read_bytes()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "text").write_bytes(text[: 16 << 10])
        files = {
            "zstd, 1 MiB of text (honest)": pack(get_compressor("zstd", level=1),
                                                 text[: 1 << 20]),
            "cm, 4 KiB of text (honest)": pack(get_compressor("cm"), text[:4096]),
            "transformer, 2 KiB of text (honest)": pack(get_compressor("transformer"),
                                                        text[:2048]),
        }
        for case, hostile in HOSTILE_MODELS.items():
            files[f"{case} (crafted)"] = hostile.container()
        # The torch engine's workers are processes (cm's and the kernels' are threads).
        torch_engine = get_compressor("transformer", engine="torch", chunk_size=64,
                                      batch_size=1)
        header, payload = split_container_v1(pack_v1(torch_engine, text[:256]))
        fields = json.loads(header)
        fields["params"]["workers"] = 16
        files[WORKERS_16] = frame_v1(json.dumps(fields).encode(), payload)
        files["gzip declaring 2^40 bytes (crafted)"] = frame("gzip", {}, 1 << 40,
                                                             bytes(DIGEST_BYTES), b"")
        files[f"zstd of {BOMB_BYTES >> 20} MiB of zeros (crafted)"] = _zeros_bomb()
        runs = [(label, []) for label in files]
        runs.insert(runs.index((WORKERS_16, [])) + 1, (WORKERS_16, ["--workers", "2"]))
        runs.append((f"zstd of {BOMB_BYTES >> 20} MiB of zeros (crafted)", ["--max-output",
                                                                              "1G"]))
        print(f"\n{'container':44s} {'flags':16s} {'exit':>4s} {'peak RSS':>9s} "
              f"{'seconds':>7s} {'workers':>7s}  message")
        for label, flags in runs:
            path = folder / "case.gcz"
            path.write_bytes(files[label])
            row = measure(["decompress", path.name, "-o", "out", "--force", *flags], folder)
            print(f"{label:44s} {' '.join(flags):16s} {row['exit']:>4s} "
                  f"{row['resident_mib']:>5.0f} MiB {row['seconds']:>7.1f} {row['workers']:>7d}"
                  f"  {row['message']}")
        fingerprint = get_compressor("transformer", engine="torch").predictor.fingerprint
        chunks = (folder / "text").read_bytes()[: 16 << 10]
        (folder / "text.gcz").write_bytes(frame(
            "transformer", {"engine": "torch"}, len(chunks),
            hashlib.sha256(chunks).digest()[:DIGEST_BYTES],
            version_1_model_payload("transformer", fingerprint, chunks, 2048, 2)))
        print("\nstopping a --workers 2 run of the Transformer's torch engine (2 KiB chunks in "
              "groups of 2) once its workers code:")
        for command in (["compress", "text", *WORKER_RUN, "-o", "stopped.gcz"],
                        ["decompress", "text.gcz", "-o", "stopped"]):
            for stop in (signal.SIGTERM, signal.SIGKILL):
                seconds, code = stop_time(command, folder, stop)
                print(f"  {command[0]:10s} {signal.Signals(stop).name:7s}: exit {code}, last "
                      f"process gone after {seconds:.2f} s")


if __name__ == "__main__":
    main()
