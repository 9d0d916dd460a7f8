"""A one-line progress bar with an ETA on stderr, for encodes and decodes long enough to need
one. Library functions take ``progress(stage, done, total, note="")``; this is the CLI's."""

from __future__ import annotations

import os
import sys
import time

AFTER = 2.0  # seconds before a bar appears (``$LRCODEC_PROGRESS_AFTER`` changes it)


class ProgressBar:
    """Draws ``label stage [####    ] done/total  elapsed, ETA`` on one line of ``stream``,
    once the job has run ``after`` seconds; the ETA is the stage's pace so far."""

    def __init__(self, label: str, stream=None, after: float | None = None, width: int = 24):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.after = float(os.environ.get("LRCODEC_PROGRESS_AFTER", AFTER)) if after is None else after
        self.start = time.monotonic()
        self.stage, self.stage_start, self.shown = None, self.start, False

    @classmethod
    def for_terminal(cls, label: str, quiet: bool = False) -> "ProgressBar | None":
        """A bar when stderr is a terminal and the user did not ask for quiet; else None."""
        return None if quiet or not sys.stderr.isatty() else cls(label)

    def __call__(self, stage: str, done: int, total: int, note: str = "") -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.stage_start = stage, now
        if now - self.start < self.after:
            return
        fraction = min(done / total, 1.0) if total else 1.0
        spent = now - self.stage_start
        eta = f"ETA {spent * (1 - fraction) / fraction:.0f} s" if fraction > 0 else "ETA ?"
        bar = "#" * round(self.width * fraction)
        line = f"{self.label}: {stage} [{bar:<{self.width}}] {done}/{total}  {now - self.start:.0f} s, {eta}"
        self.stream.write(f"\r{line}  {note}".rstrip() + " \x1b[K")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the bar's line (if one was drawn)."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
