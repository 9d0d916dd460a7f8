"""``lrcodec serve``: what its server serves (the page, onnxruntime-web, the shipped models' exports,
the folder's .lrc files) and what it refuses (anything else, a path out of the folder)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from lrcodec.app.cli import main
from lrcodec.app.serve import WEB, serve_in_thread, server
from lrcodec.errors import LrcodecError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
needs_modules = pytest.mark.skipif(not (WEB / "node_modules" / "onnxruntime-web").is_dir(),
                                   reason="web/node_modules is missing (npm ci in web/)")


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "served"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.lrc").write_bytes((GOLDEN / "lrc-mshp-q3-plain.lrc").read_bytes())
    (folder / "sub" / "b c.lrc").write_bytes((GOLDEN / "lrc-mshp-q3-uq.lrc").read_bytes())
    (folder / "notes.txt").write_text("not served")
    (tmp_path / "outside.lrc").write_bytes((GOLDEN / "lrc-mshp-q3-plain.lrc").read_bytes())
    (folder / "link.lrc").symlink_to(tmp_path / "outside.lrc")  # a link out of the folder: neither listed nor served
    httpd, url = serve_in_thread(folder)
    yield url
    httpd.shutdown()


def _get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, b"", {}


@needs_modules
def test_it_serves_the_page_models_and_folder(site):
    status, body, headers = _get(site)
    assert status == 200 and b"lrcodec viewer" in body
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"  # isolated: onnxruntime-web may use threads
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    listing = json.loads(_get(site + "files.json")[1])
    assert listing["files"] == ["a.lrc", "sub/b c.lrc"]
    assert _get(site + "files/sub/b%20c.lrc")[1] == (GOLDEN / "lrc-mshp-q3-uq.lrc").read_bytes()
    index = json.loads(_get(site + "models/index.json")[1])
    assert index["485b21b306e04fb9"] == "lrc-mshp-q3"
    for suffix in (".runtime.json", ".safetensors", ".g_s.onnx"):
        assert _get(site + f"models/lrc-mshp-q3{suffix}")[0] == 200
    status, _, headers = _get(site + "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm")
    assert status == 200 and headers["Content-Type"] == "application/wasm"
    assert _get(site + "src/codec.js")[2]["Content-Type"] == "text/javascript"


@needs_modules
@pytest.mark.parametrize("path", ["notes.txt", "files/notes.txt", "files/../a.lrc", "files/%2e%2e/%2e%2e/etc/passwd", "files/%00.lrc", "files/link.lrc", "src/%2e%2e/viewer.js",
                                  "models/lrc-mshp-q3.g_a.onnx", "models/../README.md", "src/../../README.md",
                                  "vendor/onnxruntime-web/package.json", "web/index.html"])
def test_it_serves_nothing_else(site, path):
    assert _get(site + path)[0] == 404


def test_bad_folders_and_ports_are_one_line_errors(tmp_path):
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.output.strip() == f"Error: not a folder: {tmp_path / 'missing'}"
    if (WEB / "node_modules" / "onnxruntime-web").is_dir():
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(LrcodecError, match="cannot listen on 127.0.0.1"):
                server(tmp_path, port=taken.getsockname()[1])


@needs_modules
def test_a_foreign_host_name_is_refused(site):
    """A page of another site whose name it rebinds to 127.0.0.1 sends its own Host: refused."""
    request = urllib.request.Request(site + "files.json", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 403
    assert _get(site.replace("127.0.0.1", "localhost") + "files.json")[0] == 200


@needs_modules
def test_the_page_learns_the_folders_name_not_where_it_is(site):
    assert json.loads(_get(site + "files.json")[1])["folder"] == "served"
