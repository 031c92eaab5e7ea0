"""One shared writer for BENCHMARKS.md: each benchmark owns a ``<!-- name -->`` section."""
from __future__ import annotations

from pathlib import Path

from edgekd.runs.atomic import write_text


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` and ``<!-- /name -->``, atomically.

    ``body`` may or may not already carry the markers; the rest of the file is kept as it is.
    """
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    body = body.strip()
    if body.startswith(start):
        body = body[len(start):]
    if body.endswith(end):
        body = body[: -len(end)]
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if start in text and end in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    write_text(path, text)
