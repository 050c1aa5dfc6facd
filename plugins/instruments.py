"""General MIDI instruments as a DAW names them: program from a track name, and a name for a program."""

from __future__ import annotations

from amt.tokenization.midi import GM_INSTRUMENT_NAMES
from amt.tokenization.vocab import DRUMS

DRUM_CHANNEL = 10
"""General MIDI's percussion channel (1-based, as DAWs show it)."""

# Words found in track names, checked in this order (the first match wins), so "string bass" is a bass
# and "bass clarinet" a clarinet before either reaches the generic words at the end. Values are GM programs
# (0-based); drums are DRUMS.
_NAME_WORDS: tuple[tuple[str, int], ...] = (
    ("drum", DRUMS), ("kit", DRUMS), ("perc", DRUMS), ("hihat", DRUMS), ("hi-hat", DRUMS), ("snare", DRUMS),
    ("kick", DRUMS),
    ("bass clarinet", 71), ("clarinet", 71), ("bassoon", 70), ("oboe", 68), ("english horn", 69),
    ("flute", 73), ("piccolo", 72), ("recorder", 74), ("sax", 65),
    ("trumpet", 56), ("trombone", 57), ("tuba", 58), ("horn", 60), ("brass", 61),
    ("violin", 40), ("viola", 41), ("cello", 42), ("violoncello", 42), ("contrabass", 43),
    ("double bass", 43), ("string bass", 43), ("upright", 32),
    ("electric bass", 33), ("synth bass", 38), ("bass guitar", 33), ("bass", 33),
    ("harp", 46), ("timpani", 47), ("strings", 48), ("string", 48),
    ("choir", 52), ("voice", 52), ("vocal", 52), ("soprano", 52), ("alto", 52), ("tenor", 52),
    ("acoustic guitar", 24), ("nylon", 24), ("distortion", 30), ("overdrive", 29), ("guitar", 25),
    ("organ", 19), ("harpsichord", 6), ("celesta", 8), ("glock", 9), ("vibraphone", 11), ("marimba", 12),
    ("xylophone", 13), ("epiano", 4), ("e-piano", 4), ("rhodes", 4), ("electric piano", 4), ("piano", 0),
    ("keys", 0), ("pad", 88), ("lead", 80), ("synth", 80),
)


def program_from_name(name: str) -> int | None:
    """The GM program (``DRUMS`` for percussion) a track name suggests, or None when no word matches."""
    lowered = name.lower()
    for word, program in _NAME_WORDS:
        if word in lowered:
            return program
    return None


def instrument_name(instrument: int) -> str:
    """A readable name for a model instrument: its General MIDI instrument name ("Timpani"), or "Drums"."""
    return GM_INSTRUMENT_NAMES[instrument]


def resolve_instrument(program: int | None, channel: int | None, name: str) -> int:
    """The model instrument (GM program, or ``DRUMS``) of a note or track: channel 10 means drums (as in
    General MIDI, whatever the program), then an explicit program, then the name; piano (0) otherwise."""
    if channel == DRUM_CHANNEL:
        return DRUMS
    if program is not None:
        return program
    guessed = program_from_name(name)
    return 0 if guessed is None else guessed
