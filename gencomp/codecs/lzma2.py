"""LZMA2, in two framings, and why there are two.

Files (`compress`/`decompress`) use the standard .xz container, as the paper's
`lzma.compress` did, so `xz -d` can read the payload. Code lengths use **raw LZMA2**
(no container): the .xz container pads its blocks to a multiple of 4 bytes and appends an
index, so almost every one-byte continuation of a context gets the same .xz length, and a
sampler driven by those lengths samples nearly uniformly. Raw LZMA2 keeps the range
coder's byte-granular differences.

Inputs of up to 128 KiB are coded with a 128 KiB dictionary instead of the preset's (8 MiB
for preset 6): setting up the larger match finder costs more than coding a 2 KB chunk, and
samplers code thousands of short inputs. When the whole input fits in the dictionary its
size only moves the match finder's hash mask (64 Ki buckets for any dictionary up to
128 KiB), and the raw bytes were the preset's in all of the 1,018 real inputs that
tests/test_codecs.py compares (text, image, audio, random; 1 byte to 128 KiB). A raw
payload decodes with the preset's filters either way.
"""

from __future__ import annotations

import lzma
from collections.abc import Iterator
from typing import Any

from gencomp.codecs.bytestream import ByteStreamCompressor, drained
from gencomp.compressor import check_int_range, register

_RAW_FORMAT = lzma.FORMAT_RAW
#: Decoder memory allowed for an .xz file, whose block header declares its dictionary size
#: (up to 4 GiB, allocated before decoding). Preset 9 needs 65 MiB.
XZ_DECODER_MEMLIMIT = 1 << 28
#: Inputs up to this size are coded with a dictionary of this size (see the module doc).
SMALL_DICTIONARY = 1 << 17


@register("lzma2", "LZMA2: .xz container for files, raw LZMA2 for code lengths",
          level_param="preset")
class Lzma2Compressor(ByteStreamCompressor):
    """LZMA2 with an xz preset (6, Python's and the paper's default)."""

    name = "lzma2"
    library_errors = (lzma.LZMAError, EOFError)

    def __init__(self, preset: int = 6, container: str = "xz") -> None:
        check_int_range(preset, 0, 9, "preset")
        if container not in ("xz", "raw"):
            raise ValueError(f"container must be 'xz' or 'raw', got {container!r}")
        self.preset = preset
        self.container = container
        self._raw_filters = [{"id": lzma.FILTER_LZMA2, "preset": preset}]
        self._small_input_filters = [{**self._raw_filters[0], "dict_size": SMALL_DICTIONARY}]

    @property
    def params(self) -> dict[str, Any]:
        return {"preset": self.preset, "container": self.container}

    def _raw(self, data: bytes) -> bytes:
        small = len(data) <= SMALL_DICTIONARY
        return lzma.compress(data, format=_RAW_FORMAT,
                             filters=self._small_input_filters if small else self._raw_filters)

    def compress(self, data: bytes) -> bytes:
        if self.container == "raw":
            return self._raw(data)
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=self.preset)

    def code_length_bits(self, data: bytes, unit: str = "bytes") -> float:
        """ℓ_C(x) from raw LZMA2, whatever container the files use (see the module doc);
        in bytes, whatever the unit asked (see the module doc)."""
        return 8.0 * len(self._raw(data))

    def _decoded_pieces(self, payload: bytes, limit: int) -> Iterator[bytes]:
        if self.container == "raw":
            decoder = lzma.LZMADecompressor(format=_RAW_FORMAT, filters=self._raw_filters)
        else:
            decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_DECODER_MEMLIMIT)
        return drained(self.name, decoder, payload)
