"""Effort 2 on Kodak images with the lrcodec of another checkout, to compare two versions of the
refinement loop on one machine; prints JSON (bench/results/effort2-before-after.json).

    python bench/effort_before_after.py CHECKOUT IMAGE...
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]  # the checkout's, not ours
sys.path.insert(0, sys.argv.pop(1))

from PIL import Image  # noqa: E402

import lrcodec  # noqa: E402
from lrcodec import codec  # noqa: E402
from lrcodec.models import load_model  # noqa: E402
from lrcodec.learn.refine import file_loss, refine_image  # noqa: E402
from lrcodec.settings import effort_settings  # noqa: E402

model = load_model()
rows = []
for name in sys.argv[1:]:
    image = Image.open(name).convert("RGB")
    x = codec.image_to_tensor(image)
    t0 = time.perf_counter()
    result = refine_image(image, model, effort_settings(2))
    seconds = time.perf_counter() - t0
    base, refined = (file_loss(e, x, model.card["lmbda"], model)[0] for e in (result.base, result.encoded))
    rows.append({"image": Path(name).name, "gain_pct": 100 * (1 - refined / base), "seconds": seconds})
print(json.dumps({"lrcodec": lrcodec.__file__, "rows": rows}))
