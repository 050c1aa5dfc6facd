"""The attributions a model trained on Mutopia pieces owes: one line per CC-BY piece it learned from.

Creative Commons Attribution licences ask whoever shares an adaptation to credit the work, its author and
licensor, name the licence with a link, and say that the work was changed. A model's weights are derived from
its training pieces, so the built-in model ships this list beside them. It is written from the manifest of
``python -m amt.training.mutopia_corpus`` (title, composer, typesetter, licence, Mutopia id, split):

    python -m amt.training.attributions corpus/mutopia-midi/manifest.json \\
        --out amt/checkpoints/default/ATTRIBUTIONS.md

Public-domain pieces need no attribution and are counted, not listed; pieces of splits the model never
trained or chose a checkpoint on (``--splits``, default train and valid) are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from amt.errors import AmtError
from amt.fileio import atomic_write_text

LICENCE_URL = "https://creativecommons.org/licenses/by/{}/"
PIECE_URL = "https://www.mutopiaproject.org/cgibin/piece-info.cgi?id={}"


def _licence_url(licence: str) -> str | None:
    """The deed of a ``CC BY <version>`` label as ``mutopia_corpus.licence_of`` writes it; None without a
    version (the deed to link cannot be told)."""
    version = licence.removeprefix("CC BY").strip()
    return LICENCE_URL.format(version) if licence.startswith("CC BY ") and version else None


def _piece_url(mutopia_id: str) -> str | None:
    """The piece's page from its Mutopia id (``Mutopia-2019/07/24-2247`` -> id 2247)."""
    number = mutopia_id.rsplit("-", 1)[-1]
    return PIECE_URL.format(number) if number.isdigit() else None


def attributions_markdown(manifest: Mapping, splits: Sequence[str] = ("train", "valid")) -> str:
    """Markdown crediting each CC-BY piece of ``manifest`` whose split is in ``splits`` (one line per piece,
    however many MIDI files it made), sorted by composer and title."""
    if not isinstance(manifest, Mapping) or not isinstance(manifest.get("files"), list):
        raise AmtError("not a Mutopia corpus manifest: it has no list of files")
    if not all(isinstance(f, Mapping) and "piece" in f for f in manifest["files"]):
        raise AmtError("not a Mutopia corpus manifest: a file record names no piece")
    files = [f for f in manifest["files"] if f.get("split") in splits]
    if not files:
        raise AmtError(f"the manifest has no files in the splits {', '.join(splits)}")
    pieces: dict[str, Mapping] = {}
    for f in files:
        if f.get("licence_family") == "cc-by":
            pieces.setdefault(f["piece"], f)
    families = Counter(f.get("licence_family") for f in {f["piece"]: f for f in files}.values())
    source = manifest.get("source", "the Mutopia Project")
    lines = [
        "# Attributions",
        "",
        f"The weights in this folder were trained on pieces of {source}, "
        f"splits {', '.join(splits)}: {families.get('public-domain', 0)} in the public domain and "
        f"{len(pieces)} under Creative Commons Attribution licences, credited below. Each piece was compiled "
        "from its LilyPond source to MIDI, its parts given General MIDI programs, and cut into token windows "
        "(`amt.training.mutopia_corpus`, `amt prepare`); the scores themselves were not changed.",
        "",
    ]
    for f in sorted(pieces.values(), key=lambda f: (f.get("composer", ""), f.get("title", ""), f["piece"])):
        licence = f.get("licence", "CC BY")
        link = _licence_url(licence)
        licence_text = f"[{licence}]({link})" if link else licence
        url = _piece_url(f.get("mutopia_id", ""))
        title = f"[{f.get('title') or f['piece']}]({url})" if url else (f.get("title") or f["piece"])
        who = f"{f.get('composer') or 'composer unknown'}; typeset by {f.get('typesetter') or 'unknown'}"
        lines.append(f"- {title}, {who} ({f.get('mutopia_id') or f['piece']}); {licence_text}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the attributions file of a model trained on a Mutopia corpus."""
    parser = argparse.ArgumentParser(prog="python -m amt.training.attributions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("manifest", help="manifest.json written by python -m amt.training.mutopia_corpus")
    parser.add_argument("--out", required=True, help="Markdown file to write (ATTRIBUTIONS.md)")
    parser.add_argument("--splits", nargs="+", default=["train", "valid"], choices=["train", "valid", "test"],
                        help="splits the model learned from or was selected on (default: train valid)")
    args = parser.parse_args(argv)
    try:
        try:
            manifest = json.loads(Path(args.manifest).read_text())
        except (OSError, ValueError) as error:
            raise AmtError(f"{args.manifest}: cannot read the manifest ({error})") from None
        atomic_write_text(Path(args.out), attributions_markdown(manifest, args.splits))
    except AmtError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
