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


def default_threads(batch: bool = False) -> int:
    """Torch CPU threads unless --threads or $AMT_THREADS says otherwise: half the cores, at most 4 (one on a
    2-core machine). Decoding runs one small matrix product after another: on a shared 2-core machine a
    second thread made accompaniment 2-6x slower (bench/RESULTS.md, "Threads"), and half the cores leaves
    room for the DAW or browser beside it. ``batch`` work (training: large matrix products, nobody waiting
    on it interactively) gets every core, shared among the processes torchrun starts on this machine."""
    cores = os.cpu_count() or 1
    if batch:
        return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(4, cores // 2))


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
    threads_help = (f"CPU threads for torch (default ${THREADS_ENV}, else half the cores, at most 4: "
                    f"{default_threads()} here; amt train: every core); more help big models on an idle "
                    "machine")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=threads_help)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for subparser in subparsers.choices.values():  # also after the command: amt accompany ... --threads 2
        subparser.add_argument("--threads", type=int, default=argparse.SUPPRESS, metavar="N",
                               help=threads_help)
    return parser


def set_threads(threads: int | None, *, batch: bool = False) -> int:
    """Use ``threads`` CPU threads in torch (None: ``$AMT_THREADS``, else ``default_threads(batch)``);
    returns the number. Set before torch is imported (through ``OMP_NUM_THREADS``) and after
    (``torch.set_num_threads``), so that it holds whenever a command imports torch. Raises AmtError for a
    number below 1."""
    if threads is None:
        value = os.environ.get(THREADS_ENV, "").strip()
        try:
            threads = int(value) if value else default_threads(batch)
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
        set_threads(args.threads, batch=getattr(args, "batch", False))
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
