"""The command line as a user meets it: pipes, default names, one-line errors, no partial files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
import torch
from conftest import assert_pixels_close, photo_like
from PIL import Image

from lrcodec import models
from lrcodec.app.cli import main

LRCODEC = str(Path(sys.executable).with_name("lrcodec"))


def run(*args, input=None, cwd=None):
    return subprocess.run([LRCODEC, *args], input=input, capture_output=True, cwd=cwd,
                          env=os.environ.copy(), timeout=300)


def test_pipe_through_the_console_script(models_dir, tmp_path):
    src = tmp_path / "a.png"
    photo_like(65, 47).save(src)
    enc = run("encode", "-", "-o", "-", input=src.read_bytes())
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout[:3] == b"LRC"
    dec = run("decode", "-", "-o", str(tmp_path / "b.png"), input=enc.stdout)
    assert dec.returncode == 0, dec.stderr
    from PIL import Image

    assert Image.open(tmp_path / "b.png").size == (65, 47)


def test_default_names_and_no_overwrite(models_dir, tmp_path):
    src = tmp_path / "photo.png"
    photo_like(40, 40).save(src)
    r = CliRunner().invoke(main, ["encode", str(src)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "photo.lrc").exists()
    (tmp_path / "photo.png").rename(tmp_path / "original.png")
    assert CliRunner().invoke(main, ["decode", str(tmp_path / "photo.lrc")]).exit_code == 0
    assert (tmp_path / "photo.png").exists()
    before = (tmp_path / "photo.lrc").read_bytes()
    r = CliRunner().invoke(main, ["encode", str(tmp_path / "original.png"), "-o", str(tmp_path / "photo.lrc")])
    assert r.exit_code == 1 and "exists" in r.output
    assert (tmp_path / "photo.lrc").read_bytes() == before


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"hello, this is text", "not a readable image"),
])
def test_bad_images_give_one_line_errors(models_dir, tmp_path, content, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    r = run("encode", str(bad))
    assert r.returncode == 1
    err = r.stderr.decode().strip()
    assert err.startswith("Error:") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad.lrc").exists()
    assert list(tmp_path.glob(".*tmp")) == []


def test_bad_bitstreams_give_one_line_errors(models_dir, tmp_path):
    src = tmp_path / "a.png"
    photo_like(64, 64).save(src)
    assert run("encode", str(src)).returncode == 0
    data = (tmp_path / "a.lrc").read_bytes()
    cases = {"truncated": data[: len(data) // 2], "checksum": data[:-1] + bytes([data[-1] ^ 0xFF]),
             "magic": b"XYZ" + data[3:], "directory": None}
    for message, content in cases.items():
        target = tmp_path / f"{message}.lrc"
        if content is None:
            target.mkdir()
        else:
            target.write_bytes(content)
        r = run("decode", str(target), "-o", str(tmp_path / f"{message}.png"))
        err = r.stderr.decode().strip()
        assert r.returncode == 1 and err.startswith("Error:") and message in err, err
        assert len(err.splitlines()) == 1
        assert not (tmp_path / f"{message}.png").exists()


def test_missing_file_and_usage_errors(models_dir, tmp_path):
    r = run("decode", str(tmp_path / "nope.lrc"))
    assert r.returncode == 1 and b"no such file" in r.stderr
    assert run("encode").returncode == 2
    assert run("encode", "x.png", "--quality", "abc").returncode == 2


def test_file_from_an_unknown_model(models_dir, tmp_path, tiny_scale_model):
    from lrcodec.codec import encode_image

    (tmp_path / "other.lrc").write_bytes(encode_image(photo_like(32, 32), tiny_scale_model).data)
    r = run("decode", str(tmp_path / "other.lrc"))
    assert r.returncode == 1 and b"not among the shipped models" in r.stderr


def test_info_json(models_dir, tmp_path):
    import json

    src = tmp_path / "a.png"
    photo_like(50, 30).save(src)
    run("encode", str(src), "--uq", "--seed", "9")
    r = run("info", str(tmp_path / "a.lrc"), "--json")
    d = json.loads(r.stdout)
    assert (d["width"], d["height"], d["uq"], d["seed"], d["model"]) == (50, 30, True, 9, "tiny")
    assert d["file_bytes"] == (tmp_path / "a.lrc").stat().st_size


def test_soft_mean_reconstruction_from_the_command_line(models_dir, tmp_path):
    import json

    src = tmp_path / "a.png"
    photo_like(40, 24).save(src)
    r = run("encode", str(src), "--reconstruction", "soft-mean")
    assert r.returncode == 1 and b"--soft-alpha" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "a.lrc").exists()
    r = run("encode", str(src), "--reconstruction", "soft-mean", "--soft-alpha", "6", "--seed", "2")
    assert r.returncode == 0, r.stderr
    d = json.loads(run("info", str(tmp_path / "a.lrc"), "--json").stdout)
    assert (d["uq"], d["seed"], d["reconstruction"]) == (True, 2, "soft-mean (alpha 6)")
    assert run("decode", str(tmp_path / "a.lrc"), "-o", str(tmp_path / "b.png")).returncode == 0


def test_every_command_has_help():
    for name, command in main.commands.items():
        r = CliRunner().invoke(main, [name, "--help"])
        assert r.exit_code == 0 and command.help and "Usage" in r.output


def test_help_does_not_import_torch():
    code = "import sys; from lrcodec.app.cli import main; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_outputs_get_the_permissions_open_would_give(tmp_path, tiny_model):
    """Atomic writes go through mkstemp (mode 0600), trained weights through safetensors (0600 too):
    the output must not stay private."""
    from lrcodec.imageio import write_atomic

    old = os.umask(0o022)
    try:
        write_atomic(str(tmp_path / "new.lrc"), b"x")
        assert stat.S_IMODE((tmp_path / "new.lrc").stat().st_mode) == 0o644
        (tmp_path / "new.lrc").chmod(0o640)
        write_atomic(str(tmp_path / "new.lrc"), b"y", force=True)  # a replaced file keeps its mode
        assert stat.S_IMODE((tmp_path / "new.lrc").stat().st_mode) == 0o640
        models.save_model(tiny_model.net, tmp_path / "trained", {"arch": "mean-scale"})
        assert stat.S_IMODE((tmp_path / "trained.safetensors").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_retired_models_are_listed_and_still_decode(models_dir, tmp_path, tiny_scale_model):
    """Retraining ships new names; the old model stays in models/ marked retired: --quality no
    longer picks it, `lrcodec models` says so, and its files decode as before."""
    from lrcodec.codec import encode_image

    models.save_model(tiny_scale_model.net, models_dir / "old", {"arch": "scale", "N": 16, "M": 24, "lmbda": 0.001,
                                                                 "current": False})
    old = models.load_model("old")
    (tmp_path / "old.lrc").write_bytes(encode_image(photo_like(32, 32), old).data)
    listing = CliRunner().invoke(main, ["models"])
    assert listing.exit_code == 0
    lines = {line.split()[1]: line.split()[0] for line in listing.output.splitlines()[1:3]}
    assert lines == {"tiny": "1", "old": "-"} and "retired" in listing.output
    zoo = {line.split()[0]: line.split()[-1] for line in listing.output.splitlines() if line.startswith("   ")}
    assert zoo == {"bmshj2018-factorized": "1..8", "bmshj2018-hyperprior": "1..8",
                   "mbt2018-mean": "1..8", "mbt2018": "1..8", "cheng2020-anchor": "1..6", "cheng2020-attn": "1..6",
                   "bmshj2018-hyperprior-vbr": "1..8", "mbt2018-mean-vbr": "1..8", "mbt2018-vbr": "1..8"}
    assert models.load_model(quality=1).name == "tiny"
    r = run("decode", str(tmp_path / "old.lrc"), "-o", str(tmp_path / "old.png"))
    assert r.returncode == 0, r.stderr
    info = CliRunner().invoke(main, ["info", str(tmp_path / "old.lrc"), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["model"] == "old"


def test_json_outputs_keep_their_schemas(models_dir, tmp_path):
    """The keys of every machine-readable output (docs/json.md): scripts rely on them. Adding a
    key is allowed (extend these sets); renaming or removing one needs a new schema_version."""
    import json

    src = tmp_path / "a.png"
    photo_like(40, 24).save(src)
    assert run("encode", str(src), "-e", "0", "--summary", str(tmp_path / "s.json")).returncode == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(summary) == {"schema_version", "settings", "images"} and summary["schema_version"] == 1
    plain = {"input", "output", "status", "width", "height", "model", "bytes", "bpp", "iterations", "seconds"}
    assert set(summary["images"][0]) == plain
    assert run("encode", str(src), "-e", "1", "-o", str(tmp_path / "r.lrc"), "--summary", str(tmp_path / "r.json")).returncode == 0
    refined = json.loads((tmp_path / "r.json").read_text())["images"][0]
    assert set(refined) == plain | {"psnr", "base_bytes", "base_bpp", "base_psnr", "kept_base", "lmbda", "tune", "roi"}

    info = json.loads(run("info", str(tmp_path / "a.lrc"), "--json").stdout)
    assert set(info) == {"schema_version", "model_id", "width", "height", "mode", "flags", "method", "seed",
                         "zmin", "zmax", "ymin", "ymax", "tables_crc", "z_length", "y_length", "soft_alpha",
                         "format_version", "refined", "uq", "reconstruction", "file_bytes", "bpp", "model", "metadata",
                         "alpha"}

    listing = json.loads(run("models", "--json").stdout)
    assert set(listing) == {"schema_version", "current", "shipped", "retired", "zoo"}
    assert listing["shipped"] == listing["current"] and listing["current"][0]["name"] == "tiny"
    assert {"name", "arch", "N", "M", "lmbda", "model_id"} <= set(listing["current"][0])

    assert run("eval", str(src), "--json", str(tmp_path / "e.json")).returncode == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report) == {"schema_version", "images", "mean", "options", "settings"}
    assert {"image", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "effort", "tune", "roi", "roi_psnr",
            "iterations"} <= set(report["images"][0])
    assert set(report["mean"]) == {"bpp", "psnr", "ms_ssim", "encode_s", "decode_s"}
    assert set(report["options"]) == {"effort", "method", "iterations", "tune", "roi", "uq", "reconstruction",
                                      "soft_alpha"}


def test_a_checkpoint_encodes_at_the_default_effort_and_lmbda_steers_it(tmp_path, tiny_model):
    """`lrcodec encode photo.png --model ckpt.pth.tar` at the default effort: a CompressAI state
    dict carries no lambda, so the refinement gets the documented default; --lmbda sets it, and
    without refinement it is refused in one line."""
    import torch

    ckpt = tmp_path / "ckpt.pth.tar"
    torch.save({"state_dict": tiny_model.net.state_dict()}, ckpt)
    src = tmp_path / "photo.png"
    photo_like(96, 64, seed=2).save(src)
    r = CliRunner().invoke(main, ["encode", str(src), "--model", str(ckpt), "-o", str(tmp_path / "a.lrc")])
    assert r.exit_code == 0, r.output
    assert "iterations" in r.output
    r = CliRunner().invoke(main, ["encode", str(src), "--model", str(ckpt), "--lmbda", "0.5", "-o", str(tmp_path / "b.lrc")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["decode", str(tmp_path / "b.lrc"), "--model", str(ckpt), "-o", str(tmp_path / "b.png")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["encode", str(src), "--model", str(ckpt), "--effort", "0", "--lmbda", "0.5",
                                  "-o", str(tmp_path / "c.lrc")])
    assert r.exit_code == 1 and r.output.strip().splitlines()[-1] == "Error: --lmbda steers refinement: it needs an effort above 0"
    assert not (tmp_path / "c.lrc").exists()
    r = CliRunner().invoke(main, ["encode", str(src), "--lmbda", "0", "-o", str(tmp_path / "d.lrc")])
    assert r.exit_code == 2 and "0.0 is not in the range x>0" in r.output


def _imports(args: list[str], cwd) -> list[str]:
    """The modules one lrcodec command imports, from ``python -X importtime``."""
    code = "import sys; from lrcodec.app.cli import main; sys.argv[0] = 'lrcodec'; main()"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, text=True,
                         cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    return [line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]


def test_coding_commands_import_no_compressai(tmp_path):
    """encode, decode, refine, info, models and eval of lrcodec files run on lrcodec's own
    networks: CompressAI is the tests' and benchmarks' reference only."""
    photo_like(64, 48).save(tmp_path / "a.png")
    commands = [["encode", "a.png", "-e", "0", "-o", "a.lrc"], ["encode", "a.png", "-e", "1", "-o", "b.lrc", "--quiet"],
                ["decode", "a.lrc", "-o", "a-out.png"], ["info", "a.lrc", "--json"], ["models"],
                ["refine", "a.png", "--iterations", "2", "-o", "c.lrc", "--quiet"],
                ["eval", "a.png", "--json", "eval.json"]]
    for args in commands:
        modules = _imports(args, tmp_path)
        assert "lrcodec.models" in modules, args  # the listing is read: the command ran
        assert not [m for m in modules if m.split(".")[0] == "compressai"], args


def test_decode_and_the_plain_encode_import_no_torch(tmp_path, tiny_model):
    """decode, the plain encode, info and models import neither torch nor CompressAI: a shipped
    model codes on numpy and onnxruntime (``lrcodec.runtime``), and so does a checkpoint once
    its runtime export is made (here by its plain encode)."""
    photo_like(64, 48).save(tmp_path / "a.png")
    torch.save(tiny_model.net.state_dict(), tmp_path / "ckpt.pth")
    for args in (["a.png", "-o", "a.lrc"], ["a.png", "-o", "c.lrc", "--model", "ckpt.pth"]):
        assert run("encode", *args, "-e", "0", "--quiet", cwd=tmp_path).returncode == 0
    first = run("decode", "c.lrc", "--model", "ckpt.pth", "-o", "first.png", cwd=tmp_path)  # exported by now
    assert first.returncode == 0 and b"exporting" not in first.stderr
    for args in (["decode", "a.lrc", "-o", "a-out.png"], ["decode", "a.lrc", "-o", "a-out.webp", "--model", "lrc-mshp-q3"],
                 ["decode", "c.lrc", "-o", "c-out.png", "--model", "ckpt.pth"], ["info", "a.lrc", "--json"], ["models"],
                 ["encode", "a.png", "-e", "0", "-o", "d.lrc"], ["encode", "a.png", "-e", "0", "--model", "ckpt.pth", "-o", "e.lrc"]):
        modules = _imports(args, tmp_path)
        assert "lrcodec.models" in modules, args
        assert not [m for m in modules if m.split(".")[0] in ("torch", "compressai")], args
    assert (tmp_path / "a-out.png").is_file() and (tmp_path / "a-out.webp").is_file()
    assert (tmp_path / "d.lrc").stat().st_size > 0 and (tmp_path / "e.lrc").stat().st_size > 0
    assert_pixels_close(Image.open(tmp_path / "first.png"), Image.open(tmp_path / "c-out.png"))


def _photo_with_metadata(path, fmt: str) -> tuple[bytes, dict]:
    """A 256x192 photo with an ICC profile, EXIF (make, model, date, orientation 6) and, where the
    format takes it, XMP, as a camera or phone writes them."""
    from PIL import ImageCms

    from lrcodec.imageio import register_formats

    register_formats()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif.update({0x010F: "Maker", 0x0110: "Phone 9", 0x0132: "2026:12:04 10:00:00", 0x0112: 6})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    options = {"icc_profile": icc, "exif": exif.tobytes(), **({"xmp": xmp} if fmt in ("JPEG", "HEIF") else {})}
    photo_like(256, 192, seed=8).save(path, fmt, quality=95, **options)
    return icc, {0x010F: "Maker", 0x0110: "Phone 9", 0x0132: "2026:12:04 10:00:00"}


@pytest.mark.parametrize("source", ["photo.jpg", "photo.png", "photo.heic"])
def test_a_photo_keeps_its_colour_profile_and_exif_upright(tmp_path, source):
    """The issue's table: after encode and decode, the same size (upright: orientation 6 was
    applied), the same ICC bytes and EXIF tags with orientation 1, in PNG, JPEG and WebP;
    --metadata none strips them."""
    fmt = {".jpg": "JPEG", ".png": "PNG", ".heic": "HEIF"}[Path(source).suffix]
    icc, tags = _photo_with_metadata(tmp_path / source, fmt)
    assert run("encode", source, "-e", "0", "-o", "a.lrc", "--quiet", cwd=tmp_path).returncode == 0
    info = json.loads(run("info", "a.lrc", "--json", cwd=tmp_path).stdout)
    assert info["format_version"] == 3 and info["metadata"]["icc"] == len(icc) and info["metadata"]["exif"] > 0
    for out in ("out.png", "out.jpg", "out.webp"):
        assert run("decode", "a.lrc", "-o", out, "--quiet", cwd=tmp_path).returncode == 0
        decoded = Image.open(tmp_path / out)
        exif = decoded.getexif()
        assert decoded.size == (192, 256), out  # upright
        assert decoded.info.get("icc_profile") == icc, out
        assert {k: exif.get(k) for k in tags} == tags and exif.get(0x0112) == 1, out
    assert run("encode", source, "-e", "0", "-o", "b.lrc", "--metadata", "none", "--quiet", cwd=tmp_path).returncode == 0
    assert json.loads(run("info", "b.lrc", "--json", cwd=tmp_path).stdout)["metadata"] == {}
    assert run("decode", "b.lrc", "-o", "b.png", "--quiet", cwd=tmp_path).returncode == 0
    stripped = Image.open(tmp_path / "b.png")
    assert "icc_profile" not in stripped.info and not stripped.getexif()


def test_metadata_choices_and_their_errors(tmp_path):
    _photo_with_metadata(tmp_path / "a.jpg", "JPEG")
    assert run("encode", "a.jpg", "-e", "0", "-o", "a.lrc", "--metadata", "icc,xmp", "--quiet", cwd=tmp_path).returncode == 0
    assert set(json.loads(run("info", "a.lrc", "--json", cwd=tmp_path).stdout)["metadata"]) == {"icc", "xmp"}
    bad = run("encode", "a.jpg", "-o", "b.lrc", "--metadata", "gps", cwd=tmp_path)
    assert bad.returncode == 2 and b"--metadata" in bad.stderr and not (tmp_path / "b.lrc").exists()


@pytest.mark.parametrize("command, config", [("encode", "EncodeSettings"), ("refine", "EncodeSettings"),
                                             ("refine", "RefineSettings"), ("eval", "EncodeSettings"),
                                             ("train", "TrainConfig")])
def test_option_defaults_are_the_dataclasses(command, config):
    """Every option that sets a field of the library's settings has that field's default: the
    dataclasses are the one place defaults are written."""
    import dataclasses

    from lrcodec import settings

    defaults = {f.name: f.default for f in dataclasses.fields(getattr(settings, config))
                if f.default is not dataclasses.MISSING}
    # The commands' effort is settings.DEFAULT_EFFORT (the library's is the plain encode), and
    # refine's --time-limit reaches the refinement through EncodeSettings.time_limit.
    skip = {"effort", "time_limit"} if config == "RefineSettings" else {"effort"}
    options = {p.name: p.default for p in main.commands[command].params if p.name in defaults}
    assert len(options) > 3, command
    for name, default in options.items():
        if name not in skip:
            assert default == defaults[name], f"{command} --{name}"


# ---------------------------------------------------------------- alpha (format 5)


def _with_alpha(path, mode: str = "RGBA", alpha=None):
    """A 50x30 photo with alpha (a disc fading out, or the constant given), saved as PNG; its plane."""
    image = photo_like(50, 30, seed=5).convert(mode[:-1])
    yy, xx = np.mgrid[0:30, 0:50]
    plane = (np.clip(255 - ((xx - 25) ** 2 + (yy - 15) ** 2), 0, 255) if alpha is None
             else np.full((30, 50), alpha)).astype(np.uint8)
    image.putalpha(Image.fromarray(plane, "L"))
    image.save(path)
    return plane


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_by_encode_and_decode(models_dir, tmp_path, mode):
    """Encode keeps alpha (format 5, info says how); decode writes it exactly into PNG, TIFF and
    WebP, refuses JPEG in one line (no file) and writes the colours with --drop-alpha."""
    plane = _with_alpha(tmp_path / "a.png", mode)
    invoke = lambda *args: CliRunner().invoke(main, list(args))  # noqa: E731
    assert invoke("encode", str(tmp_path / "a.png"), "-e", "0", "--quiet").exit_code == 0
    info = json.loads(invoke("info", str(tmp_path / "a.lrc"), "--json").output)
    assert (info["format_version"], info["mode"], info["metadata"]) == (5, mode[:-1], {})
    assert info["alpha"]["coding"] == "png" and info["alpha"]["bytes"] > 0
    for out in ("out.png", "out.tif", "out.webp"):
        r = invoke("decode", str(tmp_path / "a.lrc"), "-o", str(tmp_path / out), "--quiet")
        assert r.exit_code == 0, r.output
        assert np.array_equal(np.asarray(Image.open(tmp_path / out).getchannel("A")), plane), out
    assert Image.open(tmp_path / "out.png").mode == mode
    r = run("decode", "a.lrc", "-o", "out.jpg", cwd=tmp_path)
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("Error:") and "alpha channel" in err and "PNG, WebP, AVIF or TIFF" in err and "--drop-alpha" in err
    assert not (tmp_path / "out.jpg").exists() and list(tmp_path.glob(".*tmp")) == []
    assert invoke("decode", str(tmp_path / "a.lrc"), "-o", str(tmp_path / "out.jpg"), "--drop-alpha").exit_code == 0
    assert Image.open(tmp_path / "out.jpg").mode == mode[:-1]


def test_a_constant_alpha_costs_sixteen_bytes_and_drop_alpha_codes_the_colours(models_dir, tmp_path):
    _with_alpha(tmp_path / "a.png", alpha=200)
    for args in (["-o", "a.lrc"], ["-o", "b.lrc", "--drop-alpha"]):
        assert run("encode", "a.png", "-e", "0", "--quiet", *args, cwd=tmp_path).returncode == 0
    a, b = (json.loads(run("info", name, "--json", cwd=tmp_path).stdout) for name in ("a.lrc", "b.lrc"))
    assert (a["format_version"], a["alpha"]) == (5, {"coding": "constant", "value": 200})
    assert (b["format_version"], b["alpha"]) == (2, None)
    assert a["file_bytes"] == b["file_bytes"] + 16
    assert run("decode", "b.lrc", "-o", "b.jpg", cwd=tmp_path).returncode == 0


def test_the_overfitted_family_refuses_alpha_in_one_line(tmp_path):
    _with_alpha(tmp_path / "a.png")
    r = run("encode", "a.png", "--model", "overfit", "-e", "1", cwd=tmp_path)
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1, err
    assert err == "Error: the overfitted family does not code alpha: pass --drop-alpha to code the colours only"
    assert not (tmp_path / "a.lrc").exists()


def test_hostile_alpha_records_are_one_line_errors(models_dir, tmp_path):
    """A file whose alpha record (or its place) breaks the format, its CRC right: decode and info
    say so in one line, without a traceback, and write nothing."""
    import io
    import struct
    import zlib

    from lrcodec.format import bitstream

    plane = _with_alpha(tmp_path / "a.png")
    assert run("encode", "a.png", "-e", "0", "--quiet", cwd=tmp_path).returncode == 0
    data = (tmp_path / "a.lrc").read_bytes()
    header = bitstream.parse_header(data)
    good = bitstream.records(data, header)["alpha"]
    payloads = data[4 : bitstream.HEADER_SIZE + header.z_length + header.y_length]

    def forged(version: int, *records: bytes) -> bytes:
        section = b"".join(struct.pack("<BBII", 4, 0, len(r), len(r)) + r for r in records)
        body = b"LRC" + bytes([version]) + payloads + struct.pack("<I", len(section)) + section
        return body + struct.pack("<I", zlib.crc32(body))

    def png(image) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        return b"\x01" + buf.getvalue()

    alpha_error, section_error = "invalid alpha section", "invalid metadata section"
    cases = {
        "first-byte": (forged(5, b"\x02" + good[1:]), alpha_error),
        "constant-length": (forged(5, b"\x00\xc8\x00"), alpha_error),
        "size": (forged(5, png(Image.fromarray(plane[:, :-1], "L"))), alpha_error),
        "rgb": (forged(5, png(Image.fromarray(plane, "L").convert("RGB"))), alpha_error),
        "truncated": (forged(5, good[: len(good) // 2]), alpha_error),
        "version-3": (forged(3, b"\x00\xc8"), section_error),
        "no-alpha": (forged(5), section_error),
    }
    for name, (content, message) in cases.items():
        (tmp_path / f"{name}.lrc").write_bytes(content)
        r = run("decode", f"{name}.lrc", "-o", f"{name}.png", cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.decode().strip() == f"Error: corrupted lrcodec file ({message})", name
        assert not (tmp_path / f"{name}.png").exists()
    for name in ("first-byte", "constant-length", "version-3", "no-alpha"):  # info reads the record, not its PNG
        r = run("info", f"{name}.lrc", cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.decode().strip() == f"Error: corrupted lrcodec file ({cases[name][1]})"
