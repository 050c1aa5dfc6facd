"""Subcommands of the tokenizer: tokenize, detokenize, prepare."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the tokenizer's subcommands to the ``amt`` parser."""
