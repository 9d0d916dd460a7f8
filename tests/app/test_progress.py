"""The progress bar: drawn on stderr only when it is a terminal, never on stdout, off with --quiet."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from conftest import photo_like

from lrcodec.app.progress import ProgressBar

LRCODEC = str(Path(sys.executable).with_name("lrcodec"))


def test_bar_shows_stage_count_and_eta_after_its_delay():
    stream = io.StringIO()
    bar = ProgressBar("encode", stream=stream, after=0)
    bar("refinement", 0, 4)
    bar("refinement", 2, 4, "iteration 2: 0.5000 bpp")
    bar.close()
    text = stream.getvalue()
    assert "encode: refinement [" in text and "2/4" in text and "ETA" in text and "0.5000 bpp" in text
    assert text.endswith("\n") and text.count("\r") == 2

    quiet = io.StringIO()
    late = ProgressBar("decode", stream=quiet, after=3600)
    late("synthesis", 1, 2)
    late.close()
    assert quiet.getvalue() == ""


def _run_with_terminal_stderr(args: list[str], env: dict) -> tuple[int, bytes, str]:
    """Run the CLI with stderr on a pseudo-terminal and stdout on a pipe."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([LRCODEC, *args], stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read()
    proc.wait(timeout=300)
    os.close(leader)
    return proc.returncode, out, seen.decode(errors="replace")


def test_cli_draws_progress_on_a_terminal_stderr_and_keeps_stdout_clean(models_dir, tmp_path):
    src = tmp_path / "a.png"
    photo_like(96, 64).save(src)
    env = {**os.environ, "LRCODEC_PROGRESS_AFTER": "0"}
    code, data, terminal = _run_with_terminal_stderr(["encode", str(src), "-e", "1", "-o", "-"], env)
    assert code == 0, terminal
    assert data[:3] == b"LRC"  # stdout holds the file and nothing else
    assert "encode: refinement [" in terminal and "ETA" in terminal

    (tmp_path / "a.lrc").write_bytes(data)
    code, _, terminal = _run_with_terminal_stderr(["decode", str(tmp_path / "a.lrc"), "-o", str(tmp_path / "b.png")], env)
    assert code == 0 and "decode: synthesis [" in terminal

    code, data, terminal = _run_with_terminal_stderr(["encode", str(src), "-e", "1", "-o", "-", "--quiet"], env)
    assert code == 0 and data[:3] == b"LRC" and "ETA" not in terminal and terminal.strip() == ""
