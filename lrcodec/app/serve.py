"""The viewer page (``web/``) on localhost, showing a folder's ``.lrc`` files decoded in the
browser (``lrcodec serve DIR``). A thin layer over the standard library's HTTP server: it serves the
page, onnxruntime-web's WebAssembly (from ``web/node_modules``), the shipped models' runtime
exports, and the folder's ``.lrc`` files, nothing else, and receives nothing.

The responses carry COOP/COEP headers so that the page is cross-origin isolated, which lets
onnxruntime-web use threads; a request whose Host is not this server's own address is refused, so
that no other site's page can read the folder by rebinding its name to 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from functools import cached_property
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import LrcodecError

WEB = Path(__file__).resolve().parents[2] / "web"  # the checkout's web/ (a source or editable install)
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
MODEL_SUFFIXES = (".runtime.json", ".safetensors", ".g_s.onnx")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
         ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm"}


class Site:
    """What the server serves: the page's files, onnxruntime-web's, the models', the folder's."""

    def __init__(self, folder: Path, web: Path = WEB):
        self.folder, self.web = folder.resolve(), web
        if not self.folder.is_dir():
            raise LrcodecError(f"not a folder: {folder}")
        if not (web / "index.html").is_file():
            raise LrcodecError(f"the viewer's files are missing ({web}); serve from a checkout of lrcodec")
        self.ort = web / "node_modules" / "onnxruntime-web" / "dist"
        if not all((self.ort / name).is_file() for name in ORT_FILES):
            raise LrcodecError(f"the viewer needs onnxruntime-web: run `npm ci` in {web} (or `make install`)")

    @cached_property
    def models(self) -> dict[str, str]:
        """{model id hex: name} of the shipped models (current and retired) that have a runtime export."""
        from ..models import SPEC, models_dir, shipped_models

        return {card["model_id"]: card["name"] for card in shipped_models(current_only=False)
                if (models_dir() / f"{card['name']}{SPEC}").is_file()}

    def served(self, file: Path) -> bool:
        """Whether a path is one of the folder's .lrc files (links followed: none that leads out)."""
        try:
            file = file.resolve()
        except (OSError, ValueError):  # a NUL byte, a loop
            return False
        return file.is_relative_to(self.folder) and file.suffix == ".lrc" and file.is_file()

    def files(self) -> list[str]:
        """The folder's .lrc files (and its subfolders'), as sorted relative paths."""
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*.lrc") if self.served(p))

    def resolve(self, path: str) -> tuple[Path | bytes, str] | None:
        """(file or bytes, content type) of a request path, None where it names nothing served."""
        path = unquote(urlsplit(path).path)
        if path in ("/", "/index.html"):
            return self.web / "index.html", TYPES[".html"]
        if path == "/files.json":
            return json.dumps({"folder": self.folder.name, "files": self.files()}).encode(), TYPES[".json"]
        if path == "/models/index.json":
            return json.dumps(self.models).encode(), TYPES[".json"]
        if path.startswith("/models/"):
            from ..models import models_dir

            name = path[len("/models/"):]
            if any(name == f"{model}{suffix}" for model in self.models.values() for suffix in MODEL_SUFFIXES):
                return models_dir() / name, "application/octet-stream"
            return None
        if path.startswith("/vendor/onnxruntime-web/"):
            name = path.rsplit("/", 1)[1]
            return (self.ort / name, TYPES[Path(name).suffix]) if name in ORT_FILES else None
        if path.startswith("/files/"):
            file = self.folder / path[len("/files/"):]
            return (file, "application/octet-stream") if self.served(file) else None
        if path in ("/viewer.js", "/viewer.css", "/decode-worker.js"):
            return self.web / path[1:], TYPES[Path(path).suffix]
        if path.startswith("/src/") and path.endswith(".js"):
            names = {p.name for p in (self.web / "src").glob("*.js")}
            return (self.web / "src" / path[len("/src/"):], TYPES[".js"]) if path[len("/src/"):] in names else None
        return None


def handler(site: Site):
    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            self._answer(body=True)

        def do_HEAD(self):
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            port = self.server.server_address[1]
            if self.headers.get("Host") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
                self.send_error(HTTPStatus.FORBIDDEN)  # a page of another site rebinding its name to 127.0.0.1
                return
            found, data = site.resolve(self.path), None
            if found and isinstance(found[0], bytes):
                data = found[0]
            elif found:
                try:
                    data = found[0].read_bytes()
                except OSError:
                    pass
            if data is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self.send_response(HTTPStatus.OK)
            for key, value in (("Content-Type", found[1]), ("Content-Length", str(len(data))),
                               ("Cache-Control", "no-cache"), ("Cross-Origin-Opener-Policy", "same-origin"),
                               ("Cross-Origin-Embedder-Policy", "require-corp"),
                               ("Cross-Origin-Resource-Policy", "same-origin"), ("X-Content-Type-Options", "nosniff")):
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format, *args):  # quiet: the page's requests are not the user's business
            pass

    return Handler


def server(folder: Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server of the viewer for a folder, bound but not yet serving (``serve_forever``); port 0
    picks a free one (``server_address`` says which)."""
    site = Site(Path(folder))
    try:
        return ThreadingHTTPServer((host, port), handler(site))
    except OSError as e:
        raise LrcodecError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None


def serve_in_thread(folder: Path, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """(a running server, its address): for tests and benchmarks; ``shutdown()`` stops it."""
    httpd = server(folder, host, port)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://{host}:{httpd.server_address[1]}/"
