"""The docs cannot rot: the Python examples of README and the user docs run, and docs/results.md holds the tables that
bench/tables.py makes from the committed results."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from conftest import photo_like
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


DOCS = ("README.md", "docs/usage.md", "docs/tuning.md", "docs/overfit.md")  # the documents whose Python blocks run


def test_the_docs_python_examples_run(tmp_path, monkeypatch):
    """Every Python block of README and the user docs, in order, in one folder."""
    blocks = [(name, block) for name in DOCS
              for block in re.findall(r"```python\n(.*?)```", (ROOT / name).read_text(), re.S)]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRCODEC_MODELS", raising=False)
    photo_like(96, 64, seed=8).save("photo.png")
    Path("photos").mkdir()
    photo_like(64, 48, seed=9).save("photos/a.png")
    Image.new("L", (24, 16), 255).save("mask.png")
    for name, block in blocks:
        exec(compile(block, name, "exec"), {})
    assert len(blocks) == 5 and Path("encoded/a.lrc").stat().st_size > 0 and Path("photo.lrc").stat().st_size > 0


def test_results_doc_holds_the_generated_tables(monkeypatch):
    monkeypatch.delenv("LRCODEC_MODELS", raising=False)
    spec = importlib.util.spec_from_file_location("tables", ROOT / "bench" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    doc = tables.DOC.read_text()
    assert doc == tables.with_tables(doc), "docs/results.md is stale: run python bench/tables.py --write"
    readme = tables.README.read_text()
    assert readme == tables.with_effort_table(readme), "README's effort table is stale: run python bench/tables.py --write"
    tuning = tables.TUNING.read_text()
    assert tuning == tables.with_tuning_table(tuning), "docs/tuning.md is stale: run python bench/tables.py --write"
    overfit = tables.OVERFIT.read_text()
    assert overfit == tables.with_overfit_tables(overfit), "docs/overfit.md is stale: run python bench/tables.py --write"
    web = tables.WEB_DOC.read_text()
    assert web == tables.with_web_table(web), "docs/web.md is stale: run python bench/tables.py --write"
