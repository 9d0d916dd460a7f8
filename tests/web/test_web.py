"""The page's decoder (web/) against the Python decoder on the same files: hostile files are errors
in node as they are in Python, and the viewer, driven in headless Chromium by ``lrcodec serve``, shows
what ``lrcodec decode`` decodes: pixels within the format's float bound, alpha exactly.

They need node, web/node_modules (``npm ci`` in web/, which ``make install`` runs) and Chromium; where
one is missing they are skipped, except under CI, which installs them all."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrcodec import codec
from lrcodec.app.probe import grid_digest, latent_digest, symbol_digest
from lrcodec.errors import LrcodecError
from lrcodec.metrics import PIXEL_FRACTION, PIXEL_LEVELS

ROOT = Path(__file__).resolve().parents[2]
WEB, GOLDEN = ROOT / "web", ROOT / "tests" / "golden"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _need(ok: bool, what: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing under CI, which installs it")
        pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    _need(found is not None and (WEB / "node_modules" / "onnxruntime-web").is_dir(), "node with web/node_modules")
    return found


def _run_node(node: str, *args: str, timeout: int = 600) -> dict:
    done = subprocess.run([node, *args], cwd=WEB, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _python(path: Path) -> dict:
    try:
        latents = codec.decode_latents(path.read_bytes()).latents
    except LrcodecError as e:
        return {"error": str(e)}
    if isinstance(latents, list):  # an overfitted file's grids
        return {"grids": grid_digest(latents)}
    return {"symbols": symbol_digest(latents), "latents": latent_digest(latents)}


def _mutated(data: bytes, rand: random.Random) -> bytes:
    """A hostile variant of a file, its CRC made valid again so that it reaches past the checksum."""
    b = bytearray(data)
    kind = rand.randrange(4)
    if kind == 0:
        b[rand.randrange(48)] = rand.randrange(256)
    elif kind == 1:
        for _ in range(rand.randint(1, 4)):
            i = rand.randrange(48, len(b) - 4)
            b[i] ^= 1 << rand.randrange(8)
    elif kind == 2:
        b = b[: rand.randrange(len(b))]
    else:
        at = rand.randrange(len(b))
        b[at:at] = bytes(rand.randrange(256) for _ in range(rand.randint(1, 32)))
    if len(b) >= 8:
        b[-4:] = zlib.crc32(bytes(b[:-4])).to_bytes(4, "little")
    return bytes(b)


def test_node_and_python_agree_on_hostile_files(node, tmp_path):
    """Each of 150 hostile files is an error in both decoders, with the same message, or decodes to
    the same symbols and y_hat in both."""
    rand = random.Random(46)
    seeds = [(GOLDEN / n).read_bytes() for n in ("lrc-mshp-q3-plain.lrc", "lrc-mshp-q3-uq.lrc", "lrc-mshp-q3-metadata.lrc",
                                                  "lrc-mshp-q3-alpha.lrc", "lrc-mshp-q1-refined.lrc", "overfit-500.lrc",
                                                  "overfit-2000.lrc")]
    paths = []
    for i in range(150):
        path = tmp_path / f"hostile-{i:03d}.lrc"
        path.write_bytes(_mutated(rand.choice(seeds), rand))
        paths.append(path)
    ours = _run_node(node, "test/decode-files.mjs", *map(str, paths))
    outcomes, differ = {"error": 0, "image": 0}, []
    for path in paths:
        expected, got = _python(path), ours[str(path)]
        if "error" in expected and "error" in got:  # the same error, advice for the command line aside
            expected, got = ({"error": _gist(r["error"])} for r in (expected, got))
        if got != expected:
            differ.append((path.name, got, expected))
        outcomes["error" if "error" in expected else "image"] += 1
    assert differ == [], "\n".join(map(str, differ))
    assert outcomes["error"] > 100 and outcomes["image"] > 0, outcomes


def _gist(message: str) -> str:
    """An error message without the advice that differs between the command line and the page."""
    return message.split(", which")[0].split(" (raise it")[0]


def _pixels_close(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """The format's bound on float pixels: a value by at most PIXEL_LEVELS, fewer than PIXEL_FRACTION of them at all."""
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    return ours.shape == theirs.shape and diff.max(initial=0) <= PIXEL_LEVELS and (diff.size == 0 or np.count_nonzero(diff) < PIXEL_FRACTION * diff.size)


@pytest.fixture(scope="module")
def served(tmp_path_factory, node):
    """A folder of files, served by ``lrcodec serve``'s server, and what Chromium made of its viewer."""
    _need(Path(CHROMIUM).is_file(), f"Chromium ({CHROMIUM})")
    from lrcodec.app.serve import serve_in_thread
    from lrcodec.runtime import runtime_for

    folder = tmp_path_factory.mktemp("served")
    (folder / "golden").mkdir()
    for name in [*json.loads((GOLDEN / "golden.json").read_text()), *json.loads((GOLDEN / "overfit.json").read_text())]:
        shutil.copy(GOLDEN / name, folder / "golden" / name)
    photo = Image.open(ROOT / "lrcodec" / "samples" / "chelsea.png").convert("RGB")
    (folder / "photos").mkdir()
    for q in (2, 6):
        (folder / "photos" / f"chelsea-q{q}.lrc").write_bytes(codec.encode_image(photo, runtime_for(quality=q)).data)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    (folder / "chelsea-alpha.lrc").write_bytes(codec.encode_image(rgba, runtime_for(quality=3)).data)
    grey = photo.convert("LA")
    (folder / "chelsea-grey-alpha.lrc").write_bytes(codec.encode_image(grey, runtime_for(quality=3)).data)
    (folder / "truncated.lrc").write_bytes((GOLDEN / "lrc-mshp-q3-plain.lrc").read_bytes()[:100])
    picked = tmp_path_factory.mktemp("picked") / "picked.lrc"  # chosen with the page's file picker, not served
    picked.write_bytes((GOLDEN / "lrc-mshp-q3-alpha.lrc").read_bytes())
    httpd, url = serve_in_thread(folder)
    try:
        page = _run_node(node, "test/browser.mjs", url, "--pick", str(picked), timeout=900)
    finally:
        httpd.shutdown()
    shutil.copy(picked, folder / picked.name)  # compared with the others below
    return folder, page


def test_every_golden_file_decodes_in_chromium_to_its_pins(served):
    _, page = served
    for name, expected in json.loads((GOLDEN / "overfit.json").read_text()).items():
        assert page["files"][f"golden/{name}"].get("grids") == expected["symbols_sha256"], name
    for name, expected in json.loads((GOLDEN / "golden.json").read_text()).items():
        shown = page["files"][f"golden/{name}"]
        if expected["format_version"] == 1:
            assert "format 1 file does not decode in the page" in shown["error"]
        else:
            assert (shown.get("symbols"), shown.get("latents")) == (expected["symbols_sha256"], expected["latents_sha256"]), name


def test_viewer_shows_what_lrcodec_decode_decodes(served):
    folder, page = served
    assert page["messages"] == []
    files = page["files"]
    assert sorted(files) == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.lrc"))
    for name, shown in files.items():
        data = (folder / name).read_bytes()
        if name.startswith("golden/v1-"):
            assert "error" in shown and "does not decode in the page" in shown["error"], name
            continue
        try:
            image = codec.decode_latents(data).image()
        except LrcodecError as e:
            assert shown["error"] == str(e), name
            continue
        assert "error" not in shown, (name, shown.get("error"))
        assert shown["crossOriginIsolated"], "the server's headers should isolate the page (threads)"
        expected = np.asarray(image.convert("RGBA"))
        decoded = np.frombuffer(base64.b64decode(shown["rgba"]), np.uint8).reshape(expected.shape)
        canvas = np.frombuffer(base64.b64decode(shown["canvas"]), np.uint8).reshape(expected.shape)
        assert np.array_equal(decoded[..., 3], expected[..., 3]) and np.array_equal(canvas[..., 3], expected[..., 3]), name
        assert _pixels_close(decoded[..., :3], expected[..., :3]), name
        opaque = expected[..., 3] == 255  # a canvas keeps colours exactly where it need not premultiply them
        assert _pixels_close(canvas[..., :3][opaque], expected[..., :3][opaque]), name
        assert shown["alpha"] == (image.mode in ("RGBA", "LA")), name
        assert shown["mode"] == ("L" if image.mode in ("L", "LA") else "RGB"), name


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _alpha_variants(width: int, height: int) -> dict[str, bytes]:
    """Alpha records, valid and forged, of a width x height plane, as PNG chunks would be forged."""
    rows = b"".join(b"\0" + bytes((x * 5 + y) % 256 for x in range(width)) for y in range(height))
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    iend = _chunk(b"IEND", b"")
    stream = zlib.compress(rows, 9)
    png = lambda *chunks: b"\x01\x89PNG\r\n\x1a\n" + b"".join(chunks)  # noqa: E731
    return {
        "plain": png(ihdr, _chunk(b"IDAT", stream), iend),
        "split IDAT": png(ihdr, _chunk(b"IDAT", stream[:7]), _chunk(b"IDAT", stream[7:]), iend),
        "a text chunk": png(ihdr, _chunk(b"tEXt", b"a\0b"), _chunk(b"IDAT", stream), iend),
        "junk after the stream": png(ihdr, _chunk(b"IDAT", stream + b"\0\1"), iend),
        "a short stream": png(ihdr, _chunk(b"IDAT", zlib.compress(rows[:-1], 9)), iend),
        "a long stream": png(ihdr, _chunk(b"IDAT", zlib.compress(rows + b"\0", 9)), iend),
        "a wrong Adler-32": png(ihdr, _chunk(b"IDAT", stream[:-1] + bytes([stream[-1] ^ 1])), iend),
        "a chunk after IEND": png(ihdr, _chunk(b"IDAT", stream), iend, _chunk(b"tEXt", b"a\0b")),
        "two IENDs": png(ihdr, _chunk(b"IDAT", stream), iend, iend),
        "an IEND first": png(ihdr, iend, _chunk(b"IDAT", stream), iend),
        "IDAT split by a chunk": png(ihdr, _chunk(b"IDAT", stream[:7]), _chunk(b"tEXt", b"a\0b"), _chunk(b"IDAT", stream[7:]), iend),
        "a second IHDR": png(ihdr, ihdr, _chunk(b"IDAT", stream), iend),
        "an IEND with data": png(ihdr, _chunk(b"IDAT", stream), _chunk(b"IEND", b"x")),
        "a wrong chunk CRC": png(ihdr, _chunk(b"IDAT", stream)[:-1] + b"\0", iend),
        "16 bits": png(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)), _chunk(b"IDAT", stream), iend),
        "interlaced": png(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1)), _chunk(b"IDAT", stream), iend),
        "another size": png(_chunk(b"IHDR", struct.pack(">IIBBBBB", width + 1, height, 8, 0, 0, 0, 0)), _chunk(b"IDAT", stream), iend),
        "a bad filter": png(ihdr, _chunk(b"IDAT", zlib.compress(b"\5" + rows[1:], 9)), iend),
        "constant": b"\0\x80",
        "constant, 3 bytes": b"\0\x80\0",
        "an unknown form": b"\2\x80",
    }


def test_node_and_python_agree_on_forged_alpha_records(node, tmp_path):
    """The page takes exactly the alpha records the command line takes, and decodes them to the same plane."""
    from lrcodec.format import bitstream

    data = (GOLDEN / "lrc-mshp-q3-alpha.lrc").read_bytes()
    header = bitstream.parse_header(data)
    paths = {}
    for name, record in _alpha_variants(header.width, header.height).items():
        path = tmp_path / f"{name.replace(' ', '-').replace(',', '')}.lrc"
        path.write_bytes(bitstream.pack(header, *bitstream.payloads(data, header), {"alpha": record}))
        paths[name] = path
    ours = _run_node(node, "test/decode-files.mjs", "--alpha", *map(str, paths.values()))
    accepted = []
    for name, path in paths.items():
        try:
            plane = codec.decode_latents(path.read_bytes()).alpha
            expected = {"alpha": hashlib.sha256(plane.tobytes()).hexdigest()}
            accepted.append(name)
        except LrcodecError as e:
            expected = {"error": str(e)}
        got = ours[str(path)]
        assert {k: got[k] for k in expected if k in got} == expected, name
    assert accepted == ["plain", "split IDAT", "a text chunk", "constant"]


def test_a_large_image_decodes_alike_in_node(node, tmp_path):
    """Past 1 MP both decoders run g_s tile by tile, and the page's h_s in bands of rows: the same
    symbols, and pixels within the bound."""
    from lrcodec.runtime import runtime_for

    rng = np.random.default_rng(46)
    smooth = Image.fromarray(rng.integers(0, 256, (32, 36, 3), np.uint8)).resize((1150, 1030), Image.BICUBIC)
    path = tmp_path / "large.lrc"
    path.write_bytes(codec.encode_image(smooth, runtime_for(quality=3)).data)
    ours = _run_node(node, "test/decode-files.mjs", "--pixels", str(path))[str(path)]
    decoded = codec.decode_latents(path.read_bytes())
    assert (ours["symbols"], ours["latents"]) == (symbol_digest(decoded.latents), latent_digest(decoded.latents))
    expected = np.asarray(decoded.image().convert("RGBA"))
    assert _pixels_close(np.frombuffer(base64.b64decode(ours["rgba"]), np.uint8).reshape(expected.shape), expected)
