"""Write the bridge's OpenAPI document: ``python -m amt.plugins.openapi [PATH]`` (plugins/openapi.json).

The committed ``plugins/openapi.json`` is checked against the app by the tests, so rerun this after changing
the protocol.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from amt.fileio import atomic_write_text
from amt.plugins.server import openapi_schema

DEFAULT_PATH = Path(__file__).resolve().parent / "openapi.json"


def render() -> str:
    """The OpenAPI document as stable, indented JSON text."""
    return json.dumps(openapi_schema(), indent=2, sort_keys=True) + "\n"


def write(path: str | os.PathLike = DEFAULT_PATH) -> Path:
    """Write the document atomically to ``path``."""
    target = Path(path)
    atomic_write_text(target, render())
    return target


if __name__ == "__main__":
    print(write(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PATH))
