"""The docs cannot rot: README's Python example runs, and docs/results.md holds the tables that
bench/tables.py makes from the committed results."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from conftest import photo_like

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every Python block of README, in order, in one folder."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRCODEC_MODELS", raising=False)
    photo_like(96, 64, seed=8).save("photo.png")
    Path("photos").mkdir()
    photo_like(64, 48, seed=9).save("photos/a.png")
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert len(blocks) == 2 and Path("encoded/a.lrc").stat().st_size > 0 and Path("photo.lrc").stat().st_size > 0


def test_results_doc_holds_the_generated_tables(monkeypatch):
    monkeypatch.delenv("LRCODEC_MODELS", raising=False)
    spec = importlib.util.spec_from_file_location("tables", ROOT / "bench" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    doc = tables.DOC.read_text()
    assert doc == tables.with_tables(doc), "docs/results.md is stale: run python bench/tables.py --write"
    readme = tables.README.read_text()
    assert readme == tables.with_effort_table(readme), "README's effort table is stale: run python bench/tables.py --write"
