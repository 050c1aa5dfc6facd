"""Record benchmark results in bench/RESULTS.md: one ``## `` section per benchmark script.

Each script calls ``record_section`` with its own heading: it replaces that section (or, with
``append=True``, adds an entry at its end), creates it or the file when missing, and leaves the other
sections as they are. The file is rewritten atomically, so an interrupted run never leaves it half-written.

The scripts are run as ``python bench/NAME.py``, which puts bench/ first on ``sys.path``: that is how they
import this module (``from results import record_section``), and why no script in bench/ may be named like a
standard-library module (a ``bench/tokenize.py`` once shadowed ``tokenize`` for numpy and everything else).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from amt.fileio import atomic_write_text

__all__ = ["RESULTS", "record_section"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PREAMBLE = "# Benchmarks\n\nOne section per benchmark script.\n"


def record_section(
    heading: str, body: str, *, append: bool = False, path: str | os.PathLike = RESULTS
) -> None:
    """Put ``body`` under the level-2 ``heading`` (e.g. ``"## Server"``) of the Markdown file ``path``.

    The section runs from its heading line (matched whole) to the next ``## `` heading or the end of the file.
    By default its content is replaced; with ``append=True`` ``body`` is added after it, separated by a blank
    line. A missing section is added at the end of the file, a missing file is created with a short preamble.
    Sections are separated by one blank line; the file ends with one newline.
    """
    heading = heading.strip()
    if not heading.startswith("## ") or "\n" in heading:
        raise ValueError(f"heading must be one line starting with '## ', got {heading!r}")
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else PREAMBLE
    found = re.search(rf"^{re.escape(heading)}[ \t]*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    entries = [found.group(1).strip("\n")] if append and found else []
    entries.append(body.strip("\n"))
    section = heading + "\n\n" + "\n\n".join(entry for entry in entries if entry) + "\n\n"
    if found:
        text = text[: found.start()] + section + text[found.end() :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write_text(path, text.rstrip("\n") + "\n")
