"""LibriSpeech: every FLAC file of a folder (recursive, sorted), reduced to 8-bit as the paper
does (`gencomp.preprocessing.audio_to_bytes`), cut into chunks per utterance, each
utterance's last partial chunk dropped."""

from __future__ import annotations

import soundfile

from gencomp.datasets.base import DataSource, Segment, split_chunks
from gencomp.errors import UsageError
from gencomp.preprocessing import audio_to_bytes


class LibriSpeech(DataSource):
    name = "audio"
    title = "LibriSpeech"
    subfolder = "librispeech"
    suffixes = (".flac",)
    download = "librispeech"
    paper_rates = {
        "unchunked": {"gzip": 36.4, "lzma2": 29.9, "png": 32.2, "flac": 30.9},
        "chunked": {"gzip": 38.5, "lzma2": 38.2, "png": 37.6, "flac": 30.3},
    }
    paper_chinchilla_rate = 21.0

    def count(self, source: str, chunk_size: int) -> int:
        try:
            return soundfile.info(source).frames // chunk_size
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise UsageError(f"cannot read audio {source}: {error}") from error

    def read(self, segment: Segment, chunk_size: int) -> list[bytes]:
        start = segment.first * chunk_size
        try:
            samples, _ = soundfile.read(segment.source, start=start,
                                        stop=start + segment.num_chunks * chunk_size,
                                        dtype="int16", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise UsageError(f"cannot read audio {segment.source}: {error}") from error
        if samples.shape[1] != 1:
            raise UsageError(f"expected mono audio, {segment.source} has {samples.shape[1]} "
                             "channels")
        return split_chunks(audio_to_bytes(samples[:, 0]), segment, chunk_size)
