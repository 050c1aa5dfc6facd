"""Harmonisation metrics: how Bach-like are alto, tenor and bass written under a given soprano?

``amt eval --harmonize`` keeps the soprano of each held-out chorale as controls, lets the model write the
other three voices, and compares the result with Bach's own voices and with a random baseline. Voices are
told apart by instrument: the music21 chorales carry Soprano 64, Alto 65, Tenor 66, Bass 67 (see
:mod:`amt.training.music21_corpus`), and the model is asked for notes on 65-67 only.

Everything is measured on a beat grid: the quarter notes of the piece's tempo map (``MidiMeta``), which a
generation inherits from its input. At each beat, a voice's pitch is the note sounding at the beat's onset
that started last (of several starting together, the highest; the lowest for the bass), or none. Metrics
(pooled over all pieces and samples, so long chorales weigh more):

- ``parallel_fifths`` / ``parallel_octaves``: share of (voice pair, consecutive beats) moves, over the six
  pairs, where both voices move in the same direction from a perfect fifth to a perfect fifth (octaves:
  unison or octave to unison or octave), compound intervals included;
- ``voice_crossings``: share of (adjacent voice pair, beat) where the lower voice sounds above the upper;
- ``out_of_range``: share of written notes (alto, tenor, bass) outside the usual ranges ``SATB_RANGES``;
- ``in_key``: share of written notes whose pitch class belongs to the key (Krumhansl-Schmuckler estimate
  from Bach's four voices, weighted by duration; minor keys admit the raised sixth and seventh);
- ``chord_agreement``: mean Jaccard similarity of each beat's pitch-class set (all voices) with Bach's, over
  beats where either sounds (Bach's own voices score 1 by definition: the ceiling);
- ``notes_per_beat``: onsets per beat per written voice (rhythmic density);
- ``chord_forming``: share of beats where all four voices sound whose pitch classes (at least three) fit one
  triad or seventh chord (``amt.sampling.chords``);
- ``short_notes``: share of written notes shorter than an eighth (half the beat they start in);
- ``voice_coverage``: share of (written voice, beat) with a note sounding (a silent voice is not harmony).
  A diagnostic only, with no verdict: the random baseline sings on the soprano's rhythm, so it sounds on
  every beat the soprano does, which in a homophonic chorale is nearly every beat Bach's voices do; the row
  cannot tell a system that follows the texture from one that copies it.

The random baseline keeps the soprano and, on the soprano's rhythm, gives each lower voice a pitch drawn
uniformly from the notes of the soprano's key within the compass that voice has in Bach's chorales
(``BACH_COMPASS``: its lowest to highest note over the training split). That compass, not the textbook
``SATB_RANGES``, is "the voice's range" here: drawing from the yardstick itself would put the baseline at
zero out-of-range notes by construction, better than Bach, and no system could ever be closer to Bach on
that row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from amt.errors import AmtError
from amt.sampling.chords import fits_chord
from amt.sampling.options import BEAT_PARALLELS
from amt.sampling.tonality import estimate_key, key_pitch_classes
from amt.tokenization import ops
from amt.tokenization.midi import MidiMeta, MidiTokens, midi_tokens_from_notes
from amt.tokenization.notes import end_ticks, onset_ticks
from amt.tokenization.vocab import TIME_RESOLUTION
from amt.training import music21_corpus

VOICES = ("soprano", "alto", "tenor", "bass")
WRITTEN = ("alto", "tenor", "bass")
VOICE_PROGRAMS: dict[str, int] = {voice: music21_corpus.VOICE_PROGRAMS[voice][0] for voice in VOICES}
"""The chorale voices' programs in the music21 conversion (Soprano/Alto/Tenor/Baritone Sax: 64-67)."""
SATB_RANGES: dict[str, tuple[int, int]] = {
    # Inclusive MIDI pitches: the usual choral ranges of harmony textbooks, a step wider at the top where
    # Bach often goes (soprano A5, bass D4).
    "soprano": (60, 81),  # C4-A5
    "alto": (55, 74),  # G3-D5
    "tenor": (48, 69),  # C3-A4
    "bass": (40, 62),  # E2-D4
}
BACH_COMPASS: dict[str, tuple[int, int]] = {
    # Lowest and highest MIDI pitch of each lower voice over the 340 training-split chorales of the music21
    # conversion (measured with Voices.from_midi; the test chorales span the same compass).
    "alto": (53, 74),  # F3-D5
    "tenor": (48, 69),  # C3-A4
    "bass": (36, 64),  # C2-E4
}
PAIRS = tuple((i, j) for i in range(4) for j in range(i + 1, 4))  # (upper, lower) voice indices
ADJACENT = ((0, 1), (1, 2), (2, 3))

ROWS: tuple[tuple[str, str, str], ...] = (
    # (metric, label, number format)
    ("parallel_fifths", "parallel fifths / pair-move", "{:.4f}"),
    ("parallel_octaves", "parallel octaves / pair-move", "{:.4f}"),
    ("voice_crossings", "voice crossings / pair-beat", "{:.4f}"),
    ("out_of_range", "notes out of SATB range", "{:.4f}"),
    ("in_key", "notes in key", "{:.4f}"),
    ("chord_agreement", "chord agreement with Bach (Jaccard)", "{:.4f}"),
    ("chord_forming", "beats forming a triad or seventh chord", "{:.4f}"),
    ("short_notes", "written notes shorter than an eighth", "{:.4f}"),
    ("notes_per_beat", "notes per beat per voice", "{:.3f}"),
    ("voice_coverage", "voice sounding on beat", "{:.4f}"),
)
SAMPLING: dict = {"monophonic": True, "legato": True, "no_parallels": True, "beat_parallels": BEAT_PARALLELS,
                  "grid": 4, "voice_density": None, "top_p": 0.6}
"""How ``harmonize`` samples unless told otherwise: as the voices of a chorale sing. Each voice sings one note
at a time and, once it has entered, without rests (``legato``: each note holds until the voice's next one),
on a sixteenth-note grid of the chorale's tempo; no voice moves in parallel fifths or octaves with another
from one sonority to the next (``no_parallels``), and such moves from one beat to the next through passing
notes keep ``beat_parallels`` of their probability. ``voice_density``, when set, asks the sampler for that
many times the soprano's notes per second in each written voice (``SamplingOptions.density``; None: no
target). Nucleus sampling keeps the likeliest 60% of the mass. All of it was chosen on the validation
chorales (see MODEL_CARD.md)."""
DIAGNOSTIC = frozenset({"voice_coverage"})
"""Rows printed without a verdict (see the module docstring)."""


class HarmonyError(AmtError):
    """A piece that cannot be scored as a four-voice harmonisation (no soprano, no beats)."""


@dataclass(frozen=True)
class Voices:
    """The notes of each voice of a piece: per voice (onset ticks, end ticks, pitches), 10 ms ticks."""

    notes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    meta: MidiMeta

    @classmethod
    def from_midi(cls, midi: MidiTokens, programs: Mapping[str, int] = VOICE_PROGRAMS) -> Voices:
        """Split a piece's notes into voices by instrument; other instruments and REST events are dropped."""
        events = midi.events[~ops.is_rest(midi.events)]
        instruments = ops.instrument_of(events[:, 2])
        notes = {}
        for voice in VOICES:
            mine = events[instruments == programs[voice]]
            onset = onset_ticks(mine)
            notes[voice] = (onset, end_ticks(mine), ops.pitch_of(mine[:, 2]))
        return cls(notes, midi.meta)

    def end(self) -> int:
        """Tick at which the last note ends."""
        return max((int(ends.max()) for _, ends, _ in self.notes.values() if len(ends)), default=0)


def beat_ticks(meta: MidiMeta, end: int) -> np.ndarray:
    """Onsets (10 ms ticks) of the quarter-note beats of the tempo map that start before tick ``end``."""
    ticks = meta.grid_ticks(1, end)
    return ticks[ticks < end]


def beat_pitches(voices: Voices, beats: np.ndarray) -> np.ndarray:
    """``[beats, 4]`` sounding pitch of each voice at each beat onset, -1 where the voice is silent: of the
    notes sounding there, the one that started last (among notes starting together, the highest; the lowest
    for the bass)."""
    grid = np.full((len(beats), len(VOICES)), -1, dtype=np.int64)
    for v, voice in enumerate(VOICES):
        onsets, ends, pitches = voices.notes[voice]
        sounding = (onsets[None, :] <= beats[:, None]) & (beats[:, None] < ends[None, :])
        # A note whose end was rounded a tick past the next note's onset still "sounds" at that onset; the
        # voice has moved on all the same (the chorales at 90 bpm have such overlaps on many beats).
        never = np.iinfo(np.int64).min
        latest = np.where(sounding, onsets[None, :], never).max(axis=1, initial=never)
        sounding &= onsets[None, :] == latest[:, None]
        if voice == "bass":
            chosen = np.where(sounding, pitches[None, :], 1000).min(axis=1, initial=1000)
            grid[:, v] = np.where(chosen < 1000, chosen, -1)
        else:
            grid[:, v] = np.where(sounding, pitches[None, :], -1).max(axis=1, initial=-1)
    return grid


def _all_notes(voices: Voices, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(pitches, durations) of the given voices."""
    pitches = [voices.notes[v][2] for v in names]
    durations = [voices.notes[v][1] - voices.notes[v][0] for v in names]
    return np.concatenate(pitches), np.concatenate(durations).astype(np.float64)


@dataclass
class Tally:
    """Counts behind the metrics, added over pieces and samples."""

    moves: int = 0
    fifths: int = 0
    octaves: int = 0
    pair_beats: int = 0
    crossings: int = 0
    notes: int = 0
    out_of_range: int = 0
    in_key: int = 0
    chord_beats: int = 0
    jaccard: float = 0.0
    voice_beats: int = 0
    sounding: int = 0
    full_beats: int = 0
    forming: int = 0
    short: int = 0

    def add(self, voices: Voices, reference: Voices, key: frozenset[int]) -> None:
        """Score one harmonisation against the reference it answers (same beats: the reference's)."""
        beats = beat_ticks(reference.meta, max(reference.end(), 1))
        grid = beat_pitches(voices, beats)
        bach = beat_pitches(reference, beats)
        # Parallels: consecutive beats, both voices sounding at both, both moving the same way.
        for upper, lower in PAIRS:
            a, b = grid[:, upper], grid[:, lower]
            valid = (a[:-1] >= 0) & (a[1:] >= 0) & (b[:-1] >= 0) & (b[1:] >= 0)
            interval_before = (a[:-1] - b[:-1]) % 12
            interval_after = (a[1:] - b[1:]) % 12
            step_a, step_b = np.sign(a[1:] - a[:-1]), np.sign(b[1:] - b[:-1])
            similar = valid & (step_a == step_b) & (step_a != 0)
            self.moves += int(valid.sum())
            self.fifths += int((similar & (interval_before == 7) & (interval_after == 7)).sum())
            self.octaves += int((similar & (interval_before == 0) & (interval_after == 0)).sum())
        for upper, lower in ADJACENT:
            both = (grid[:, upper] >= 0) & (grid[:, lower] >= 0)
            self.pair_beats += int(both.sum())
            self.crossings += int((both & (grid[:, upper] < grid[:, lower])).sum())
        for voice in WRITTEN:
            pitches = voices.notes[voice][2]
            low, high = SATB_RANGES[voice]
            self.notes += len(pitches)
            self.out_of_range += int(((pitches < low) | (pitches > high)).sum())
            self.in_key += int(np.isin(pitches % 12, sorted(key)).sum())
        for row, reference_row in zip(grid, bach, strict=True):
            mine = {int(p) % 12 for p in row if p >= 0}
            theirs = {int(p) % 12 for p in reference_row if p >= 0}
            if mine or theirs:
                self.chord_beats += 1
                self.jaccard += len(mine & theirs) / len(mine | theirs)
        for row in grid[(grid >= 0).all(axis=1)]:
            self.full_beats += 1
            classes = {int(p) % 12 for p in row}
            self.forming += len(classes) >= 3 and fits_chord(classes)
        lengths = np.diff(beats) if len(beats) > 1 else np.array([TIME_RESOLUTION // 2])
        for voice in WRITTEN:
            onsets, ends, _ = voices.notes[voice]
            at = np.clip(np.searchsorted(beats, onsets, side="right") - 1, 0, len(lengths) - 1)
            self.short += int((ends - onsets < lengths[at] / 2 - 1).sum())
        written = grid[:, [VOICES.index(v) for v in WRITTEN]]
        self.voice_beats += written.size
        self.sounding += int((written >= 0).sum())

    def metrics(self) -> dict[str, float]:
        """The ratios of the module docstring (NaN where nothing was counted)."""

        def ratio(a: float, b: float) -> float:
            return a / b if b else float("nan")

        return {
            "parallel_fifths": ratio(self.fifths, self.moves),
            "parallel_octaves": ratio(self.octaves, self.moves),
            "voice_crossings": ratio(self.crossings, self.pair_beats),
            "out_of_range": ratio(self.out_of_range, self.notes),
            "in_key": ratio(self.in_key, self.notes),
            "chord_agreement": ratio(self.jaccard, self.chord_beats),
            "notes_per_beat": ratio(self.notes, self.voice_beats),
            "voice_coverage": ratio(self.sounding, self.voice_beats),
            "chord_forming": ratio(self.forming, self.full_beats),
            "short_notes": ratio(self.short, self.notes),
        }


def random_harmonization(reference: MidiTokens, rng: np.random.Generator,
                         programs: Mapping[str, int] = VOICE_PROGRAMS) -> MidiTokens:
    """The random baseline: the soprano kept; alto, tenor and bass on its rhythm, random notes of its key
    (estimated from the soprano alone) within each voice's compass in Bach's chorales (``BACH_COMPASS``)."""
    voices = Voices.from_midi(reference, programs)
    onsets, ends, pitches = voices.notes["soprano"]
    if not len(pitches):
        raise HarmonyError(f"{reference.source or 'a reference'} has no soprano "
                           f"(instrument {programs['soprano']})")
    tonic, mode = estimate_key(pitches, (ends - onsets).astype(np.float64))
    key = key_pitch_classes(tonic, mode)
    all_onsets, all_durations, all_pitches, all_instruments = [onsets], [ends - onsets], [pitches], []
    all_instruments.append(np.full(len(pitches), programs["soprano"]))
    for voice in WRITTEN:
        low, high = BACH_COMPASS[voice]
        choices = np.array([p for p in range(low, high + 1) if p % 12 in key])
        all_onsets.append(onsets)
        all_durations.append(ends - onsets)
        all_pitches.append(rng.choice(choices, size=len(onsets)))
        all_instruments.append(np.full(len(onsets), programs[voice]))
    return midi_tokens_from_notes(
        np.concatenate(all_onsets) / TIME_RESOLUTION, np.concatenate(all_durations) / TIME_RESOLUTION,
        np.concatenate(all_pitches), np.concatenate(all_instruments), meta=reference.meta,
        source=f"random harmonisation of {reference.source}",
    )


def _samples(output: MidiTokens | Sequence[MidiTokens]) -> Sequence[MidiTokens]:
    return [output] if isinstance(output, MidiTokens) else output


def harmonize_report(model_outputs: Sequence[MidiTokens | Sequence[MidiTokens]],
                     references: Sequence[MidiTokens], *, random_samples: int = 3, seed: int = 0,
                     programs: Mapping[str, int] = VOICE_PROGRAMS) -> dict:
    """Score harmonisations against Bach: ``{"model": metrics, "bach": metrics, "random": metrics, ...}``.

    ``model_outputs[i]`` is the model's output (one or several samples, e.g. ``[g.midi for g in
    accompany(...)]``) for ``references[i]``, Bach's chorale with all four voices. The key of each piece is
    estimated once from Bach's voices and used for every system. ``random_samples`` random baselines per
    piece are drawn from a generator seeded with ``seed``. Also returns ``closer_to_bach``: per scored
    metric (all but ``DIAGNOSTIC``), whether the model is closer to Bach than the random baseline (for chord
    agreement: higher), and ``all_closer``: whether it is on every one.
    """
    if len(model_outputs) != len(references):
        raise HarmonyError(f"{len(model_outputs)} outputs for {len(references)} references")
    if not references:
        raise HarmonyError("no pieces to score")
    rng = np.random.default_rng(seed)
    tallies = {"model": Tally(), "bach": Tally(), "random": Tally()}
    samples = 0
    for output, reference in zip(model_outputs, references, strict=True):
        bach = Voices.from_midi(reference, programs)
        missing = [v for v in VOICES if not len(bach.notes[v][2])]
        if missing:
            raise HarmonyError(f"{reference.source or 'a reference'} lacks voice(s) {', '.join(missing)}")
        pitches, durations = _all_notes(bach, VOICES)
        key = key_pitch_classes(*estimate_key(pitches, durations))
        tallies["bach"].add(bach, bach, key)
        for sample in _samples(output):
            tallies["model"].add(Voices.from_midi(sample, programs), bach, key)
            samples += 1
        for _ in range(random_samples):
            baseline = random_harmonization(reference, rng, programs)
            tallies["random"].add(Voices.from_midi(baseline, programs), bach, key)
    report: dict = {name: tally.metrics() for name, tally in tallies.items()}
    report["closer_to_bach"] = {
        metric: bool(
            report["model"][metric] > report["random"][metric]
            if metric == "chord_agreement"
            else abs(report["model"][metric] - report["bach"][metric])
            < abs(report["random"][metric] - report["bach"][metric])
        )
        for metric, _, _ in ROWS if metric not in DIAGNOSTIC
    }
    report["all_closer"] = all(report["closer_to_bach"].values())
    report["pieces"] = len(references)
    report["samples"] = samples
    report["random_samples"] = random_samples * len(references)
    return report


def format_harmony_table(report: Mapping) -> str:
    """The report as a Markdown table: one row per metric; model, Bach, random, and whether the model is
    closer to Bach than random."""
    lines = ["| metric | model | Bach | random | model closer to Bach |", "|---|---:|---:|---:|:---:|"]
    for metric, label, fmt in ROWS:
        cells = [fmt.format(report[name][metric]) for name in ("model", "bach", "random")]
        verdict = report["closer_to_bach"].get(metric)
        closer = "(diagnostic)" if verdict is None else "yes" if verdict else "no"
        lines.append(f"| {label} | {' | '.join(cells)} | {closer} |")
    return "\n".join(lines)


def harmonize(model, references: Sequence[MidiTokens], *, samples: int = 3, seed: int = 0,
              programs: Mapping[str, int] = VOICE_PROGRAMS, **sampling) -> list[list[MidiTokens]]:
    """Let ``model`` write alto, tenor and bass under each reference's soprano: ``samples`` variations per
    piece, seeded ``seed + piece index`` so runs are reproducible; ``sampling`` (top_p, temperature...) goes
    to ``SamplingOptions``, over the defaults of ``SAMPLING``."""
    from amt.sampling import Request, SamplingOptions, run

    sampling = {**SAMPLING, **sampling}
    voice_density = sampling.pop("voice_density")
    outputs = []
    for i, reference in enumerate(references):
        piece = dict(sampling)
        if voice_density and "density" not in piece:
            onsets, ends, _ = Voices.from_midi(reference, programs).notes["soprano"]
            if len(onsets):
                melody_rate = len(onsets) * TIME_RESOLUTION / int(ends.max())  # soprano notes per second
                piece["density"] = voice_density * len(WRITTEN) * melody_rate
        options = SamplingOptions.from_dict({**piece, "seed": seed + i,
                                             "instruments": [programs[v] for v in WRITTEN]})
        generations = run(model, reference, Request("accompany", keep_instruments=[programs["soprano"]],
                                                    options=options, variations=samples))
        outputs.append([g.midi for g in generations])
    return outputs
