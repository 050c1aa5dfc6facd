"""Package-level promises: one import namespace, a light tokenizer, and a CLI that lists every task."""

from __future__ import annotations

import subprocess
import sys

from amt.cli import build_parser

EXPECTED_COMMANDS = {
    "tokenize", "detokenize", "prepare",
    "accompany", "infill", "continue",
    "train", "eval",
    "demo", "serve",
}


def test_cli_lists_every_subcommand():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) >= EXPECTED_COMMANDS


def test_tokenization_never_imports_torch():
    code = (
        "import sys\n"
        "import amt.tokenization.midi, amt.tokenization.ops, amt.tokenization.corpus, amt.cli\n"
        "amt.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_task_layer_and_its_front_ends_load_without_torch():
    # The sampler (and torch) load when a task runs: the bridge's schema and the demo's helpers need neither.
    code = (
        "import sys\n"
        "import amt.sampling.tasks, amt.plugins.server, amt.demo.callbacks\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_front_ends_live_under_the_amt_namespace():
    import amt.demo
    import amt.plugins
    import amt.tokenization
    import amt.training

    for module in (amt.tokenization, amt.training, amt.plugins, amt.demo):
        assert module.__name__.startswith("amt.")
