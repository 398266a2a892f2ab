"""Continue an image with every compressor: the paper's Figure 3, as a PNG.

    python examples/image_continuation.py              # an ImageNet zebra from ../shared/data
    python examples/image_continuation.py photo.jpg    # any image Pillow can read

The image becomes grayscale (mean of RGB, as the paper does) and its centre is shrunk to
32×64 pixels. Each row's first 32 pixels are given; each compressor generates the other 32,
one byte at a time, from its own code lengths. Writes outputs/examples/image_grid.png, the
panels enlarged 6× with a red bar between given and generated pixels, two to a line.
"""

import sys
import time
from pathlib import Path

from gencomp import get_compressor
from gencomp.cli import run_script
from gencomp.gallery import default_compressors, default_prompt, image_continuation, sampler_used
from gencomp.render import ImagePanel, image_grid, image_prompt_region
from samplers.continuation import progress_bar
from samplers.modalities import load_image_prompt

HEIGHT, WIDTH = 32, 64
SEED = 0
OUTPUT = Path("outputs") / "examples" / "image_grid.png"

def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_prompt("image", data_dir=None)
    region = image_prompt_region(load_image_prompt(path), HEIGHT, WIDTH)

    panels = [ImagePanel("original", region)]
    for name in default_compressors():  # those registered in this checkout
        label = f"{name} · {sampler_used(name, 'code-length')}"
        started = time.perf_counter()
        with progress_bar(sys.stderr.isatty(), HEIGHT * (WIDTH // 2), label) as advance:
            generated = image_continuation(get_compressor(name), region, sampler="code-length",
                                           seed=SEED, report=advance)
        print(f"{label:24} {time.perf_counter() - started:6.1f} s", flush=True)
        panels.append(ImagePanel(label, generated))

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    image_grid(panels, split_column=WIDTH // 2, columns=2,
               title=f"{path.name}: left given, right generated").save(OUTPUT)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    sys.exit(run_script(main, "image_continuation.py"))
