"""A built wheel is the tool: installed outside the checkout, it lists, encodes and decodes with
the weights it carries (pyproject.toml's lrcodec.weights, found by models.models_dir). pyproject.toml
holds dependency ranges, constraints.txt the tested pins, so that `pip install .` keeps an environment's
torch."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import photo_like

ROOT = Path(__file__).resolve().parent.parent


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, (args, out.stdout[-2000:], out.stderr[-2000:])
    return out


def _copy_checkout(dest: Path) -> Path:
    """The checkout's files at ``dest``, without environments and build outputs."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "out", "runs",
                                                              "__pycache__", ".pytest_cache", ".hypothesis"))
    return dest


def _name(requirement: str) -> str:
    """A requirement's project name, normalized (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line), line  # exact pins only
            name, version = line.split("==")
            pins[_name(name)] = version
    return pins


def test_dependencies_are_ranges_and_each_has_a_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    assert not [r for r in requirements if "==" in r]  # ranges: pins live in constraints.txt
    # CI installs with constraints.txt (make install), so it tests a pinned version of each.
    pins = _constraints()
    assert not [r for r in requirements if _name(r) not in pins], pins
    assert "torchvision" not in {_name(r) for r in project["dependencies"]}  # compressai's, not lrcodec's


def test_pip_install_keeps_the_installed_torch(tmp_path):
    # An environment that already holds torch (this one, made with constraints.txt): `pip install .`
    # must want to install lrcodec alone. --isolated: no pip configuration (a global constraints file
    # would otherwise take part); --no-index: nothing can come from a registry, so the resolution
    # succeeds only if every requirement is already satisfied here.
    torch = importlib.metadata.version("torch")
    source = _copy_checkout(tmp_path / "source")
    report = tmp_path / "report.json"
    _run([sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--no-build-isolation", "--no-index",
          "--report", str(report), "--quiet", str(source)])
    install = json.loads(report.read_text())["install"]
    assert [_name(i["metadata"]["name"]) for i in install] == ["lrcodec"], install  # no torch, numpy, ...
    assert importlib.metadata.version("torch") == torch


def test_wheel_installed_outside_the_checkout_encodes_and_decodes(tmp_path):
    # Built from a copy: setuptools keeps build/ between builds, so a build in the checkout
    # could carry models that models/ no longer has.
    source = _copy_checkout(tmp_path / "source")
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
