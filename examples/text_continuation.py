"""Continue a text with every compressor: the paper's Figure 2, in your terminal.

    python examples/text_continuation.py               # enwik8 (Einstein) from ../shared/data
    python examples/text_continuation.py notes.txt     # the first 1024 bytes of any file

A lossless compressor is a generative model: the fewer bits it needs for prompt·b, the more
likely it thinks the next byte b is, ρ(b | prompt) ∝ 2^(ℓ(prompt) − ℓ(prompt·b)). We sample
100 bytes that way with each compressor byte by byte ("code-length", the paper's sampler;
for the model compressors cm and transformer it samples their predictor directly), and with
each classical codec also by scoring candidate strings of 8 bytes ("lookahead", which lets
LZ codecs such as gzip see the repeats they are built to code). A few minutes on a CPU.
"""

import sys
from pathlib import Path

from gencomp import get_compressor
from gencomp.cli import run_script
from gencomp.gallery import DEFAULT_TEXT_OFFSET, default_compressors, default_prompt, sampler_used
from gencomp.render import visible_text
from samplers import sample_continuation

PROMPT_BYTES = 1024
LENGTH = 100
SEED = 0


def one_line(data: bytes) -> str:
    """Every byte visible (newlines as ↵), on one line."""
    return visible_text(data).replace("\n", "")


def main() -> None:
    if len(sys.argv) > 1:
        path, offset = Path(sys.argv[1]), 0
    else:
        path, offset = default_prompt("text", data_dir=None), DEFAULT_TEXT_OFFSET
    with open(path, "rb") as handle:
        handle.seek(offset)
        prompt = handle.read(PROMPT_BYTES)
        truth = handle.read(LENGTH)

    print(f"{path.name}, {len(prompt)} bytes from byte {offset}; the last 300:\n")
    print(visible_text(prompt[-300:]))
    print(f"\n{'original':26}{one_line(truth)}")

    for name in default_compressors():  # those registered in this checkout
        compressor = get_compressor(name)
        samplers = ("code-length",) if compressor.predictor else ("code-length", "lookahead")
        for sampler in samplers:
            continuation = sample_continuation(compressor, prompt, LENGTH, sampler, horizon=8,
                                               seed=SEED)
            label = f"{name} · {sampler_used(name, sampler)}"
            print(f"{label:26}{one_line(continuation)}", flush=True)


if __name__ == "__main__":
    sys.exit(run_script(main, "text_continuation.py"))
