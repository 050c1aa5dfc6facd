"""Subcommands of the sampler: accompany, infill, continue, and ``info`` (a file's parts, to keep by number).

Registration imports nothing heavy; the handlers import torch, the model and the tasks when they run.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from amt.device import AUTO, DEVICE_HELP
from amt.errors import GenerationError
from amt.sampling.options import SamplingOptions, option_fields

TASK_SUFFIX = {"accompany": "accompanied", "infill": "infilled", "continue": "continued"}


def _pitch_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH MIDI pitches such as 48-84, got {text!r}"
                                         ) from None
    return low, high


def _grid(text: str) -> int | str:
    if text.strip().lower() == "off":
        return "off"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected steps per quarter note or off, got {text!r}") from None


_PARSERS = {"pitch_range": _pitch_range, "grid": _grid}
"""Options whose flag reads text of its own form (LO-HI; STEPS or off)."""


def _add_options(parser: argparse.ArgumentParser) -> None:
    """One flag per sampling option, as ``SamplingOptions`` declares it (``amt.sampling.options``). Flags
    default to None (not given), so an option left out keeps its one declared default."""
    hints = typing.get_type_hints(SamplingOptions)
    for name, default, option in option_fields():
        if option.flag is None:
            continue
        flag = option.flag or "--" + name.replace("_", "-")
        types = (hints[name], *typing.get_args(hints[name]))
        kind = next((t for t in (bool, int, float) if t in types), None)
        shown = "" if default is None or isinstance(default, bool) else f" (default {default:g})"
        if default is True:  # a flag that switches the option off (--no-file-density)
            parser.add_argument(flag, dest=name, action="store_false", default=None, help=option.help)
        elif kind is bool:
            parser.add_argument(flag, dest=name, action="store_true", default=None, help=option.help)
        elif name == "instruments":
            parser.add_argument(flag, dest=name, type=int, nargs="+", metavar=option.metavar,
                                help=option.help)
        else:
            parser.add_argument(flag, dest=name, type=_PARSERS.get(name, kind), metavar=option.metavar,
                                help=option.help + shown)


def options_from_args(args: argparse.Namespace) -> SamplingOptions:
    """The ``SamplingOptions`` of the flags given (``_add_options``), checked; ``--grid off``: free timing."""
    given = {name: getattr(args, name) for name, _, option in option_fields()
             if option.flag is not None and getattr(args, name) is not None}
    if given.get("beat_parallels") is not None and not given.get("no_parallels"):
        raise GenerationError("--beat-parallels weighs the moves that --no-parallels lets through: add "
                              "--no-parallels")
    if given.get("grid") == "off":
        given.update(grid=None, file_grid=False)
    options = SamplingOptions(**given)
    options.validate()
    return options


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN.mid", help="the MIDI file to work on")
    parser.add_argument("--model", metavar="PATH_OR_HUB_ID",
                        help="model folder or Hugging Face Hub id (default: the built-in model)")
    parser.add_argument("--out", metavar="OUT.mid",
                        help="output file (default: IN-TASK.mid in the current folder); with several "
                        "variations OUT-1.mid, OUT-2.mid, ...")
    parser.add_argument("--variations", type=int, default=1, metavar="K",
                        help="how many different outputs to write (one batched run)")
    _add_options(parser)
    parser.add_argument("--device", default=AUTO, help=DEVICE_HELP)
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (there is none anyway when stderr is not a terminal)")


def _add_keep(group, *, what: str) -> None:
    """--keep-part, --keep-track, --keep-instrument: the three ways to say which parts to keep."""
    group.add_argument("--keep-part", type=int, nargs="+", action="extend", metavar="N",
                       help=f"part numbers to keep{what} (as `amt info IN.mid` lists them)")
    group.add_argument("--keep-track", nargs="+", action="extend", metavar="NAME",
                       help="track names to keep (every track of that name)")
    group.add_argument("--keep-instrument", type=int, nargs="+", action="extend", metavar="N",
                       help="General MIDI programs to keep (128 = drums)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add info, accompany, infill and continue to the ``amt`` parser."""
    info = subparsers.add_parser(
        "info", help="list the parts of a MIDI file (numbers for --keep-part)",
        description="One line per part (a track, channel and program): number, track name, channel, General "
        "MIDI program, notes, pitch range, first and last second, and a guess at its role.")
    info.add_argument("input", metavar="IN.mid", help="the MIDI file to describe")
    info.add_argument("--json", action="store_true", help="print the parts as a JSON list")
    info.set_defaults(func=_info)

    accompany = subparsers.add_parser(
        "accompany", help="write new parts around the parts you keep",
        description="Keep some parts of IN.mid unchanged and replace the others with new music written "
        "around them (e.g. harmony under a melody). By default the new parts are the replaced parts' "
        "instruments in their register, each in a track of its own; a melody alone gets a piano.")
    _add_keep(accompany.add_mutually_exclusive_group(required=True), what="")
    _add_common(accompany)
    accompany.set_defaults(func=_run)

    infill = subparsers.add_parser(
        "infill", help="rewrite a span, keeping the music around it",
        description="Replace the notes that start inside a span of IN.mid with new ones that lead from the "
        "music before the span into the music after it.")
    infill.add_argument("--start", type=float, metavar="S", help="span start in seconds")
    infill.add_argument("--end", type=float, metavar="E", help="span end in seconds")
    infill.add_argument("--start-bar", type=float, metavar="BAR",
                        help="first bar of the span (bars count from 1, using the file's meter)")
    infill.add_argument("--end-bar", type=float, metavar="BAR", help="last bar of the span (included)")
    _add_keep(infill.add_mutually_exclusive_group(), what=" inside the span too")
    _add_common(infill)
    infill.set_defaults(func=_run)

    cont = subparsers.add_parser(
        "continue", help="add music after the end of a piece",
        description="Write SECONDS of new music that continues IN.mid after its last note.")
    cont.add_argument("--seconds", type=float, required=True, help="how many seconds to add")
    _add_common(cont)
    cont.set_defaults(func=_run)


def _output_paths(args: argparse.Namespace) -> list[Path]:
    if args.variations < 1:
        raise GenerationError(f"--variations must be at least 1, got {args.variations}")
    out = Path(args.out) if args.out else Path(f"{Path(args.input).stem}-{TASK_SUFFIX[args.command]}.mid")
    if not out.parent.is_dir():
        raise GenerationError(f"output folder {out.parent} does not exist")
    if args.variations == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{k}{out.suffix or '.mid'}") for k in range(1, args.variations + 1)]


def _span(args: argparse.Namespace):
    """The infill span, from --start/--end (seconds) or from --start-bar/--end-bar (end bar included)."""
    from amt.sampling.tasks import Span

    seconds, bars = (args.start, args.end), (args.start_bar, args.end_bar)
    if all(v is not None for v in seconds) and all(v is None for v in bars):
        return Span(*seconds)
    if all(v is not None for v in bars) and all(v is None for v in seconds):
        return Span(*bars, unit="bars")
    raise GenerationError("give the span as --start and --end (seconds) or as --start-bar and --end-bar")


def _write_all(paths: list[Path], generations) -> None:
    """Write every output or none: all are encoded and written to temporary files before any is renamed."""
    from amt.fileio import atomic_paths

    files = [g.midi.to_midi_bytes() for g in generations]
    with atomic_paths(paths) as temporary:
        for tmp, data in zip(temporary, files, strict=True):
            tmp.write_bytes(data)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from amt.device import resolve_device
    from amt.models import load_model, resolve_model_name
    from amt.sampling.tasks import Request, run
    from amt.tokenization.midi import read_midi

    options = options_from_args(args)
    paths = _output_paths(args)
    midi = read_midi(args.input)
    request = Request(args.command, keep_parts=getattr(args, "keep_part", None),
                      keep_tracks=getattr(args, "keep_track", None),
                      keep_instruments=getattr(args, "keep_instrument", None),
                      span=_span(args) if args.command == "infill" else None,
                      seconds=getattr(args, "seconds", None), options=options, variations=args.variations)
    if request.span is not None:
        request.span.seconds(midi.meta)  # a span the file cannot have fails before the model loads
    model = load_model(resolve_model_name(args.model), device=resolve_device(args.device))

    progress = [0.0] * args.variations
    # disable=None: no bar when stderr is not a terminal (a pipe, a log file).
    with tqdm(total=100, unit="%", desc=args.command, disable=True if args.quiet else None, leave=False,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, {remaining} left") as bar:
        def report(variation: int, event, fraction: float) -> None:
            progress[variation] = max(progress[variation], fraction)
            bar.update(round(100 * sum(progress) / len(progress)) - bar.n)

        generations = run(model, midi, request, callback=report)
    _write_all(paths, generations)
    if generations[0].summary:
        print(f"new notes written for: {generations[0].summary}")
    for note in generations[0].notes if generations else ():
        print(note, file=sys.stderr)
    for path, generation in zip(paths, generations, strict=True):
        print(f"{path}: {int(generation.generated.sum())} new notes, {len(generation.midi.events)} in all")
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    from amt.tokenization.midi import read_midi
    from amt.tokenization.parts import find_parts

    midi = read_midi(args.input)
    parts = find_parts(midi)
    if args.json:
        print(json.dumps([part.as_dict() for part in parts], indent=1))
        return 0
    print(f"{args.input}: {len(parts)} part{'s' if len(parts) != 1 else ''}, {len(midi)} notes, "
          f"{midi.duration_seconds:.1f} s")
    print(f"{'part':>4}  {'track':<30} {'ch':>2}  {'program':<26} {'notes':>5}  {'pitches':<7} "
          f"{'from-to (s)':<13} role")
    for p in parts:
        channel = "-" if p.channel < 0 else str(p.channel + 1)
        program = f"{p.program} {p.instrument}" if p.program < 128 else p.instrument
        print(f"{p.number:>4}  {(p.name or '-')[:30]:<30} {channel:>2}  {program[:26]:<26} {p.notes:>5}  "
              f"{f'{p.low}-{p.high}':<7} {f'{p.start:.1f}-{p.end:.1f}':<13} {p.role}")
    return 0
