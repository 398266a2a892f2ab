"""The sampler settings `gencomp sample` and the gallery use unless told otherwise, each
chosen on data the benchmarks do not report on.

Keys are what is continued: "text", "image" (the paper's task: each row's second half from
its first), "patch" (an image's bottom rows from its top rows) and "audio".
"""

from __future__ import annotations

from typing import Any

#: Text from model compressors, what does best on unseen prose
#: (benchmarks/bench_text_samples.py): exact sampling sharpened this much, and for cm with
#: a copy limit (samplers.exact): sharpened, cm copies a long prompt.
TEXT_MODEL_SETTINGS = {"cm": {"temperature": 0.5, "top_k": 2, "copy_limit": 5},
                       "transformer": {"temperature": 0.35},
                       "transformer-cm": {"temperature": 0.35}}
#: Images and audio from model compressors (benchmarks/bench_bit_exact.py, tuned on its
#: `tune` crops and clips): the model frozen once primed on the prompt, since one that
#: learns from its own sample runs away into noise or copying; images sharpened to T 0.8
#: (T 0.7-0.8 did best, 1.0 gave rougher rows).
SIGNAL_MODEL_SETTINGS = {"image": {"temperature": 0.8, "frozen": True},
                         "patch": {"temperature": 0.8, "frozen": True},
                         "audio": {"frozen": True}}
#: Images from the classical codecs, at the temperatures that put most of PNG's exact-bit
#: samples of the tune crops within the roughness of the images (`bench_bit_exact.py
#: --split tune`): the rows task T 0.3 (of 0.25-0.7, 10 crops); the patch task, where both
#: of a pixel's neighbours are generated and sharper draws smooth them into streaks, T 0.7
#: (0.3, 0.5, 0.7 and 1 put 47, 60, 67 and 63 % of 30 crops in range). Audio and text
#: draw at T 1, the codec's own distribution.
CODEC_SETTINGS = {"image": {"temperature": 0.3}, "patch": {"temperature": 0.7}}


def sampler_defaults(compressor: str, is_model: bool, task: str) -> dict[str, Any]:
    """The settings that differ from the samplers' own defaults for `compressor` (a
    registry name) continuing a `task` (see the module doc)."""
    if not is_model:
        return CODEC_SETTINGS.get(task, {})
    return TEXT_MODEL_SETTINGS.get(compressor, {}) if task == "text" \
        else SIGNAL_MODEL_SETTINGS[task]
