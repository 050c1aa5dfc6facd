"""Subcommands of the tokenizer: tokenize, detokenize, prepare.

``amt tokenize FILE.mid`` prints the formats of the shared reference files (``*.events.txt``,
``--pad``: ``*.padded.txt``, ``--controls-instrument N``: ``*.interleaved.txt``), so they can be compared
with ``diff``; ``amt detokenize`` turns any of those formats (or a packed training line) back into MIDI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the tokenizer's subcommands to the ``amt`` parser."""
    tokenize = subparsers.add_parser(
        "tokenize",
        help="print the event tokens of a MIDI file",
        description="Print the (time, duration, note) event tokens of a MIDI file on one line.",
    )
    tokenize.add_argument("midi", type=Path, metavar="FILE.mid")
    tokenize.add_argument("--pad", action="store_true", help="insert REST events in gaps over 1 s")
    tokenize.add_argument(
        "--controls-instrument",
        type=int,
        metavar="N",
        help="turn instrument N's events into controls, interleaved 5 s ahead into the padded other events "
        "(prints a '#' header line first, like the reference *.interleaved.txt files)",
    )
    tokenize.set_defaults(func=_tokenize)

    detokenize = subparsers.add_parser(
        "detokenize",
        help="write a MIDI file from tokens",
        description="Write a MIDI file from a token file: event, padded or interleaved tokens, or a training "
        "line (a leading flag token and '#' comment lines are skipped; controls become notes; pieces after "
        "a separator are placed after the previous one).",
    )
    detokenize.add_argument("tokens", type=Path, metavar="TOKENS.txt")
    detokenize.add_argument("--out", type=Path, required=True, metavar="FILE.mid")
    detokenize.set_defaults(func=_detokenize)

    prepare = subparsers.add_parser(
        "prepare",
        help="tokenize a MIDI collection into a corpus folder",
        description="Find every .mid/.midi file under SRC (recursively), tokenize them in parallel and write "
        "a corpus folder: one memory-mapped event array, an index, a train/valid/test split by content hash, "
        "and report.json listing the files skipped (and why) and the duplicates.",
    )
    prepare.add_argument("sources", type=Path, nargs="+", metavar="SRC", help="MIDI files or folders")
    prepare.add_argument("--out", type=Path, required=True, metavar="DIR", help="corpus folder to create")
    prepare.add_argument("--workers", type=int, metavar="N", help="worker processes (default: CPU count)")
    prepare.add_argument("--force", action="store_true", help="replace an existing corpus at DIR")
    prepare.add_argument(
        "--split-file",
        type=Path,
        action="append",
        metavar="FILE",
        help='JSON {"train": [...], "valid": [...], "test": [...]} of paths relative to FILE\'s folder: '
        "these files go to the split named, the others by content hash; repeat it for several sources "
        "(each corpus builder writes its own split.json)",
    )
    prepare.set_defaults(func=_prepare)


def _tokenize(args: argparse.Namespace) -> int:
    from amt.tokenization import ops
    from amt.tokenization.errors import MidiError
    from amt.tokenization.midi import read_midi

    events = read_midi(args.midi).events
    if args.controls_instrument is not None:
        instrument = args.controls_instrument
        if instrument not in set(ops.instrument_of(events[:, 2]).tolist()):
            raise MidiError(args.midi, f"instrument {instrument} plays no note")
        kept, controls = ops.extract_instruments(events, [instrument])
        tokens, _ = ops.interleave(ops.pad(kept, int(ops.onset_ticks(events).max())), controls)
        print(
            f"# controls: every event of instrument {instrument}; other events padded with REST up to the "
            "last onset of the piece; delta 500 ticks"
        )
    else:
        tokens = ops.pad(events) if args.pad else events
    print(" ".join(map(str, tokens.reshape(-1).tolist())))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from amt.tokenization.corpus import format_summary, prepare_corpus

    manifest = prepare_corpus(
        args.sources, args.out, workers=args.workers, force=args.force, split_files=args.split_file or ()
    )
    print(format_summary(manifest))
    return 0


def read_token_file(path: Path) -> list[int]:
    """The integer tokens of a text file, skipping '#' comment lines; raises ``TokenError``."""
    from amt.tokenization.errors import TokenError

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise TokenError(f"{path}: cannot read token file ({error})") from None
    words = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#")).split()
    try:
        return [int(word) for word in words]
    except ValueError as error:
        raise TokenError(f"{path}: not a token file ({error})") from None


def tokens_to_events(tokens: list[int]) -> tuple[np.ndarray, int]:
    """Events to write for a token list: (events, piece count); see the ``detokenize`` help."""
    import numpy as np

    from amt.tokenization import ops
    from amt.tokenization.errors import TokenError
    from amt.tokenization.vocab import ANTICIPATE, AUTOREGRESS, DUR_OFFSET, SEPARATOR, VOCAB_SIZE

    array = np.asarray(tokens, dtype=np.int64)
    if len(array) and array[0] in (AUTOREGRESS, ANTICIPATE):
        array = array[1:]
    triples = ops.as_triples(array)
    if len(array) and (array.min() < 0 or triples[:, 1:].max() >= VOCAB_SIZE):
        raise TokenError(f"tokens must be non-negative, durations and notes below {VOCAB_SIZE}")
    separator = triples[:, 2] == SEPARATOR
    piece = np.cumsum(separator)
    pieces = []
    offset = 0
    for p in np.unique(piece[~separator]).tolist():
        events, controls = ops.deinterleave(triples[(piece == p) & ~separator])
        notes = np.concatenate([events, controls])
        notes = notes[np.argsort(notes[:, 0], kind="stable")]
        notes[:, 0] += offset
        pieces.append(notes)
        if len(notes):
            offset = int((notes[:, 0] + notes[:, 1] - DUR_OFFSET).max())
    return (np.concatenate(pieces) if pieces else triples[:0]), len(pieces)


def _detokenize(args: argparse.Namespace) -> int:
    from amt.tokenization.midi import write_midi
    from amt.tokenization.ops import is_rest

    events, pieces = tokens_to_events(read_token_file(args.tokens))
    write_midi(args.out, events)
    notes = int((~is_rest(events)).sum())
    print(f"wrote {args.out}: {notes} notes from {pieces} piece(s)", file=sys.stderr)
    return 0
