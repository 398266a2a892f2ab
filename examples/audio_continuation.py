"""Continue speech with every compressor: WAV files you can listen to, and spectrograms.

    python examples/audio_continuation.py              # a LibriSpeech utterance
    python examples/audio_continuation.py talk.wav     # any WAV/FLAC file

Audio is what the paper's compressors see: 8-bit unsigned samples at 16 kHz (the high byte
of each 16-bit sample, plus 128). We take the loudest 1.5 s of the utterance, give its
first second to each compressor and let it generate the last half second, 256 samples at a
time, each stretch after the 512 samples before it (`gencomp.gallery.audio_continuation`).
Writes outputs/examples/audio_*.wav (exactly the samples, 8-bit WAV) and
audio_spectrogram.png (waveform and spectrogram per compressor, a red line where generation
starts). The classical codecs score all 256 next samples by recompression, so this takes
long: about 12 minutes on this project's 2-core machine (FLAC alone about 5).
`gencomp render` makes the same clips with a worker per core.
"""

import sys
import time
from pathlib import Path

from gencomp import get_compressor
from gencomp.cli import run_script
from gencomp.gallery import (
    DEFAULT_AUDIO_CONTEXT,
    audio_continuation,
    default_compressors,
    default_prompt,
    sampler_used,
)
from gencomp.render import AudioClip, audio_figure, figure_png, wav_bytes
from gencomp.render.audio import loudest_window
from gencomp.render.page import clip_file
from samplers.continuation import progress_bar
from samplers.modalities import load_audio_prompt

SAMPLE_RATE = 16000
PROMPT_SAMPLES = SAMPLE_RATE  # 1 s
GENERATED_SAMPLES = SAMPLE_RATE // 2  # 0.5 s
SEED = 0
OUTPUT = Path("outputs") / "examples"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_prompt("audio", data_dir=None)
    utterance = load_audio_prompt(path)
    start = loudest_window(utterance, PROMPT_SAMPLES + GENERATED_SAMPLES)
    original = utterance[start:start + PROMPT_SAMPLES + GENERATED_SAMPLES]

    clips = [AudioClip("original", original, PROMPT_SAMPLES)]
    for name in default_compressors():  # those registered in this checkout
        label = f"{name} · {sampler_used(name, 'code-length')}"
        started = time.perf_counter()
        with progress_bar(sys.stderr.isatty(), GENERATED_SAMPLES, label) as advance:
            samples = audio_continuation(get_compressor(name), original[:PROMPT_SAMPLES],
                                         GENERATED_SAMPLES, context=DEFAULT_AUDIO_CONTEXT,
                                         sampler="code-length", seed=SEED, report=advance)
        print(f"{label:24} {time.perf_counter() - started:6.1f} s", flush=True)
        clips.append(AudioClip(label, samples, PROMPT_SAMPLES))

    OUTPUT.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        (OUTPUT / clip_file(clip.label)).write_bytes(wav_bytes(clip.samples))
    (OUTPUT / "audio_spectrogram.png").write_bytes(figure_png(audio_figure(clips, title=path.name)))
    print(f"wrote {len(clips)} WAV files and audio_spectrogram.png to {OUTPUT}")


if __name__ == "__main__":
    sys.exit(run_script(main, "audio_continuation.py"))
