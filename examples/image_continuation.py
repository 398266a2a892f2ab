"""Continue an image with every compressor: the paper's Figure 3, as a PNG.

    python examples/image_continuation.py              # an ImageNet zebra from ../shared/data
    python examples/image_continuation.py photo.jpg    # any image Pillow can read

The image becomes grayscale (mean of RGB, as the paper does) and its centre is shrunk to
32×64 pixels. Each row's first 32 pixels are given; each compressor generates the other 32,
one byte at a time, from its own code lengths. Writes outputs/examples/image_grid.png, the
rows enlarged 6× with a red bar between given and generated pixels. A few minutes on a CPU.
"""

import sys
import time
from pathlib import Path

from gencomp import get_compressor
from gencomp.cli import run_script
from gencomp.render import ImagePanel, image_grid, image_prompt_region
from gencomp.render.gallery import default_compressors, default_prompt
from samplers.modalities import continue_image_rows, load_image_prompt

HEIGHT, WIDTH = 32, 64
SEED = 0
OUTPUT = Path("outputs") / "examples" / "image_grid.png"

def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_prompt("image", data_dir=None)
    region = image_prompt_region(load_image_prompt(path), HEIGHT, WIDTH)

    panels = [ImagePanel("original", region)]
    for name in default_compressors():  # those registered in this checkout
        started = time.perf_counter()
        generated = continue_image_rows(get_compressor(name), region, seed=SEED)
        print(f"{name:12} {time.perf_counter() - started:6.1f} s")
        panels.append(ImagePanel(name, generated))

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    image_grid(panels, split_column=WIDTH // 2, title=f"{path.name}: left given, right generated"
               ).save(OUTPUT)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    sys.exit(run_script(main, "image_continuation.py"))
