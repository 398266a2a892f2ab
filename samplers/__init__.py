"""Every compressor as a generative model: sample continuations of a prompt.

    from gencomp import get_compressor
    from samplers import sample_continuation
    sample_continuation(get_compressor("gzip"), prompt, 100, "lookahead", horizon=8)

`samplers.modalities` continues images and audio; `samplers.quality` measures text samples.
"""

from samplers.continuation import SAMPLERS, sample_continuation

__all__ = ["SAMPLERS", "sample_continuation"]
