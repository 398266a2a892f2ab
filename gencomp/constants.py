"""Numbers the whole toolkit shares, defined once. Imports nothing.

The paper (Delétang et al., 2024) fixes the first three: 2048-byte chunks (its Transformers'
context), ImageNet patches of 32 × 64 pixels (one chunk), and LibriSpeech at 16 kHz.
"""

#: Bytes per chunk: the paper's evaluation cuts every data set into 2048-byte chunks.
CHUNK_SIZE = 2048
#: An image patch, one chunk of pixels: 32 rows of 64 (`preprocessing.closest_factors`).
PATCH_ROWS, PATCH_COLUMNS = 32, 64
#: Rate at which audio is modelled (LibriSpeech's); other rates are resampled to it.
SAMPLE_RATE = 16000
#: Environment variable naming a data folder laid out like ../shared/data.
DATA_ENV = "GENCOMP_DATA"
#: Environment variable that, set to "jit", runs the Transformer's kernels through numba's
#: JIT instead of the ahead-of-time build (`predictors.transformer_native`).
KERNELS_ENV = "GENCOMP_KERNELS"
#: Our enwik8 sample (the first 4,154,400 bytes), relative to a data folder.
ENWIK8_SAMPLE = "text/enwik8_first_4154400_bytes"
