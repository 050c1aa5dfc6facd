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

THREADS_ENV = "AMT_THREADS"
DEFAULT_THREADS = 1
"""Torch CPU threads unless --threads or $AMT_THREADS says otherwise. One: decoding runs one small matrix
product after another, and on a 2-core machine a second thread gained little when idle and cost 3-10x when
the other core was busy (bench/RESULTS.md, "Threads")."""

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
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help=f"CPU threads for torch (default ${THREADS_ENV}, else {DEFAULT_THREADS}); more "
                        "help big models on an idle machine with many cores")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads in torch (None: ``$AMT_THREADS``, else ``DEFAULT_THREADS``); returns the
    number. Set before torch is imported (through ``OMP_NUM_THREADS``) and after (``torch.set_num_threads``),
    so that it holds whenever a command imports torch. Raises AmtError for a number below 1."""
    if threads is None:
        value = os.environ.get(THREADS_ENV, "").strip()
        try:
            threads = int(value) if value else DEFAULT_THREADS
        except ValueError:
            raise AmtError(f"${THREADS_ENV} must be a whole number of threads, not {value!r}") from None
    if threads < 1:
        raise AmtError(f"the number of threads must be at least 1, not {threads}")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``amt`` command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        set_threads(args.threads)
        return int(args.func(args) or 0)
    except AmtError as error:
        print(f"amt {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
