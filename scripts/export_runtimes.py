"""Write the runtime export (``lrcodec.runtime``) of every shipped model that lacks one, or of
all with ``--all``: what ``save_model`` writes when a model is made.

    python scripts/export_runtimes.py [--all]
"""

from __future__ import annotations

import sys

from lrcodec.families import family
from lrcodec.models import SPEC, export_runtime, load_model, models_dir, shipped_models


def main() -> None:
    for card in shipped_models(current_only=False):
        stem = models_dir() / card["name"]
        if family(card["arch"]).portable and ("--all" in sys.argv or not stem.with_name(stem.name + SPEC).exists()):
            print(export_runtime(load_model(card["name"]), stem))


if __name__ == "__main__":
    main()
