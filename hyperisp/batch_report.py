"""What a batch shows while it runs and what it leaves behind.

On a terminal: a rich progress bar (files done, megapixels per second, ETA) with
failures printed above it. Elsewhere (logs, pipes, CI): one plain line per file.
``quiet``: failures and the final summary only. Failures always print as
``error: <file>: <reason>``. The summary is one JSON object (``--json``), and the
failures can be written to a JSON or CSV report (``--failures``).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from .batch import FileResult

__all__ = ["BatchReporter", "summarize", "write_failures"]


class _MegapixelsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.fields.get("megapixels", 0.0) / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:.2f} MP/s", style="progress.data.speed")


class BatchReporter:
    """Reports each :class:`FileResult` as it arrives; use as a context manager around the run."""

    def __init__(self, console: Console, total: int, verb: str, *, quiet: bool = False):
        self.console, self.total, self.verb, self.quiet = console, total, verb, quiet
        self.megapixels = 0.0
        self.progress: Progress | None = None
        if not quiet and console.is_terminal:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     _MegapixelsPerSecond(), TextColumn("ETA"), TimeRemainingColumn(),
                                     console=console, transient=True)
            self.task = self.progress.add_task(verb, total=total, megapixels=0.0)

    def __enter__(self) -> "BatchReporter":
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()

    def _print(self, text: Text) -> None:
        (self.progress.console if self.progress else self.console).print(text, soft_wrap=True, highlight=False)

    def __call__(self, result: FileResult) -> None:
        self.megapixels += result.megapixels
        if result.status == "failed":
            self._print(Text.assemble(("error:", "red"), f" {result.input}: {result.reason}"))
        elif not self.quiet and not self.progress:
            if result.status == "done":
                self._print(Text(f"{self.verb} {result.input} -> {result.output} ({result.seconds:.1f} s)"))
            else:
                self._print(Text(f"skipped {result.input}: {result.output} exists (use --overwrite)"))
        if self.progress:
            self.progress.update(self.task, advance=1, megapixels=self.megapixels)


def summarize(results: list[FileResult], *, command: str, engine: str, jobs: int, seconds: float) -> dict[str, Any]:
    """The batch as one JSON-ready object: counts, throughput and a per-file list (with ``info`` extras)."""
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    megapixels = sum(r.megapixels for r in results)
    return {
        "command": command, "engine": engine, "jobs": jobs,
        "counts": {**counts, "total": len(results)},
        "megapixels": round(megapixels, 3), "seconds": round(seconds, 3),
        "megapixels_per_second": round(megapixels / seconds, 3) if seconds > 0 else 0.0,
        "files": [r.to_dict() for r in results],
    }


def summary_line(summary: dict[str, Any], verb: str) -> str:
    """``"3 developed, 1 skipped (output exists), 1 of 5 file(s) failed; 12.0 MP in 8.1 s (1.48 MP/s)"``."""
    counts = summary["counts"]
    parts = [f"{counts['done']} {verb}"]
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped (output exists)")
    if counts["failed"]:
        parts.append(f"{counts['failed']} of {counts['total']} file(s) failed")
    return (", ".join(parts) + f"; {summary['megapixels']:.1f} MP in {summary['seconds']:.1f} s "
            f"({summary['megapixels_per_second']:.2f} MP/s)")


def write_failures(path: Path, results: list[FileResult]) -> Path:
    """Write the failed files as CSV (``.csv``: path,reason) or JSON (a list of {path, reason}), atomically."""
    from .io.atomic import atomic_output

    failures = [{"path": r.input, "reason": r.reason} for r in results if r.status == "failed"]
    if Path(path).suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["path", "reason"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(failures)
        text = buffer.getvalue()
    else:
        text = json.dumps(failures, indent=2) + "\n"
    with atomic_output(path, overwrite=True) as temp:
        temp.write_text(text)
    return Path(path)

