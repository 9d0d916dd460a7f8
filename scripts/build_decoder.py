"""Build ``lrcodec-decode``: the decode-only distribution, from the same tree as ``lrcodec``.

It holds the same ``lrcodec`` package and shipped models (with their runtime exports), and
requires only what decoding needs (``NEEDS``, with pyproject.toml's ranges): no torch, no
CompressAI. ``lrcodec decode``, ``info``, ``models`` and the plain encode (``encode --effort 0``)
work; commands that need torch (refinement, training) say so.
The two distributions hold the same package: install one of them.

    python scripts/build_decoder.py [DIST_DIR]        # writes lrcodec_decode-<version>-py3-none-any.whl
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDS = ("numpy", "constriction", "pillow", "safetensors", "onnxruntime", "click")


def requirements(project: dict) -> list[str]:
    """pyproject.toml's requirement of each package in NEEDS."""
    by_name = {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower(): r for r in project["dependencies"]}
    return [by_name[name] for name in NEEDS]


def pyproject(project: dict, setuptools: str) -> str:
    """The decode-only pyproject.toml: ``project``'s metadata with NEEDS only, and lrcodec's own
    ``[tool.setuptools]`` tables (``setuptools``: their text), so that it packages the same tree."""
    deps = ", ".join(f'"{r}"' for r in requirements(project))
    return f'''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "lrcodec-decode"
version = "{project["version"]}"
description = "lrcodec without torch: decoding and the plain encode"
requires-python = "{project["requires-python"]}"
dependencies = [{deps}]

[project.scripts]
lrcodec = "{project["scripts"]["lrcodec"]}"

{setuptools}'''


def build(dist: Path) -> Path:
    text = (ROOT / "pyproject.toml").read_text()
    project = tomllib.loads(text)["project"]
    setuptools = text[text.index("[tool.setuptools]") : text.index("[tool.pytest")]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        skip = shutil.ignore_patterns("__pycache__", "samples")
        shutil.copytree(ROOT / "lrcodec", source / "lrcodec", ignore=skip)
        shutil.copytree(ROOT / "models", source / "models", ignore=skip)
        (source / "pyproject.toml").write_text(pyproject(project, setuptools))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                        str(source)], check=True)
    return next(dist.glob(f"lrcodec_decode-{project['version']}-*.whl"))


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist").resolve()))
