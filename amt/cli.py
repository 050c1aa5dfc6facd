"""The ``amt`` command line: one entry point, one subcommand per task.

Each front end contributes its subcommands through a ``register(subparsers)`` function in its own ``cli``
module, listed in ``COMMAND_MODULES``. Registration must stay cheap (no torch import), so that
``amt --help`` answers instantly; handlers import what they need when they run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from amt import __version__
from amt.errors import AmtError

COMMAND_MODULES: tuple[str, ...] = (
    "amt.tokenization.cli",
    "amt.sampling.cli",
    "amt.demo.cli",
    "amt.training.cli",
    "amt.plugins.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="amt",
        description="Anticipatory Music Transformer co-pilot: tokenize MIDI, train models, and generate "
        "accompaniments, infillings and continuations.",
    )
    parser.add_argument("--version", action="version", version=f"amt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``amt`` command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        # The reader left (`amt tokenize FILE | head`): stop quietly like any Unix tool. stdout goes to
        # /dev/null so that the interpreter's final flush does not fail again (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # what a shell reports for a tool ended by SIGPIPE
    except AmtError as error:
        print(f"amt {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
