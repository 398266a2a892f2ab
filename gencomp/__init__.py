"""gencomp: every lossless compressor is a generative model.

    from gencomp import get_compressor
    gzip = get_compressor("gzip", level=9)
    gzip.continuation_bits(b"the cat sat on the ", [b"m", b"c"])
"""

from gencomp.compressor import (
    Compressor,
    available_compressors,
    compressor_specs,
    get_compressor,
    register,
)
from gencomp.errors import GencompError

__all__ = [
    "Compressor",
    "GencompError",
    "available_compressors",
    "compressor_specs",
    "get_compressor",
    "register",
]
