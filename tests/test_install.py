"""A built wheel is the tool: installed outside the checkout, it lists, encodes and decodes with
the weights it carries (pyproject.toml's lrcodec.weights, found by models.models_dir)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import photo_like

ROOT = Path(__file__).resolve().parent.parent


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, (args, out.stdout[-2000:], out.stderr[-2000:])
    return out


def test_wheel_installed_outside_the_checkout_encodes_and_decodes(tmp_path):
    # Built from a copy: setuptools keeps build/ between builds, so a build in the checkout
    # could carry models that models/ no longer has.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "out", "runs",
                                                                "__pycache__", ".pytest_cache", ".hypothesis"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
          str(source)])
    wheel = next((tmp_path / "dist").glob("lrcodec-*.whl"))
    shipped = sorted(p.name for p in (ROOT / "models").iterdir())
    assert sorted(n.removeprefix("lrcodec/weights/") for n in zipfile.ZipFile(wheel).namelist()
                  if n.startswith("lrcodec/weights/")) == shipped

    # A fresh environment; its dependencies are this one's (offline), on sys.path by a .pth
    # file, which does not run this environment's editable-install hook.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    photo_like(96, 64, seed=4).save(work / "photo.png")
    env = {k: v for k, v in os.environ.items() if k not in ("LRCODEC_MODELS", "PYTHONPATH")}
    lrcodec = str(venv / "bin" / "lrcodec")
    where = _run([str(python), "-c", "import lrcodec.models as m; print(m.__file__); print(m.models_dir())"],
                 cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    listing = _run([lrcodec, "models"], cwd=work, env=env).stdout
    assert "lrc-mshp-q3" in listing
    _run([lrcodec, "encode", "photo.png", "-o", "photo.lrc", "--effort", "1"], cwd=work, env=env)
    _run([lrcodec, "decode", "photo.lrc", "-o", "back.png"], cwd=work, env=env)
    from PIL import Image

    assert Image.open(work / "back.png").size == (96, 64)
