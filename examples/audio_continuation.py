"""Continue speech with every compressor: WAV files and spectrograms.

    python examples/audio_continuation.py              # a LibriSpeech utterance
    python examples/audio_continuation.py talk.wav     # any WAV/FLAC file (16 kHz mono)

Audio is what the paper's compressors see: 8-bit unsigned samples at 16 kHz (the high byte
of each 16-bit sample, plus 128), in chunks of 2048 samples. We take the loudest chunk of
the utterance, give its first half (1024 samples, 64 ms) to each compressor and let it
generate the second half. Writes outputs/examples/audio_*.wav (exactly the generated
samples, 8-bit WAV) and audio_spectrogram.png (waveform and spectrogram per compressor, a
red line where generation starts). A few minutes on a CPU.
"""

import sys
import time
from pathlib import Path

from gencomp import get_compressor
from gencomp.cli import run_script
from gencomp.render import AudioClip, audio_figure, figure_png, wav_bytes
from gencomp.render.audio import loudest_window
from gencomp.render.gallery import default_compressors, default_prompt
from samplers.modalities import continue_audio, load_audio_prompt

PROMPT_SAMPLES = 1024
GENERATED_SAMPLES = 1024
SEED = 0
OUTPUT = Path("outputs") / "examples"

def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_prompt("audio", data_dir=None)
    utterance = load_audio_prompt(path)
    start = loudest_window(utterance, PROMPT_SAMPLES + GENERATED_SAMPLES)
    original = utterance[start:start + PROMPT_SAMPLES + GENERATED_SAMPLES]

    clips = [AudioClip("original", original, PROMPT_SAMPLES)]
    for name in default_compressors():  # those registered in this checkout
        started = time.perf_counter()
        samples = continue_audio(get_compressor(name), original[:PROMPT_SAMPLES],
                                 GENERATED_SAMPLES, seed=SEED)
        print(f"{name:12} {time.perf_counter() - started:6.1f} s")
        clips.append(AudioClip(name, samples, PROMPT_SAMPLES))

    OUTPUT.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        (OUTPUT / f"audio_{clip.label}.wav").write_bytes(wav_bytes(clip.samples))
    (OUTPUT / "audio_spectrogram.png").write_bytes(figure_png(audio_figure(clips, title=path.name)))
    print(f"wrote {len(clips)} WAV files and audio_spectrogram.png to {OUTPUT}")


if __name__ == "__main__":
    sys.exit(run_script(main, "audio_continuation.py"))
