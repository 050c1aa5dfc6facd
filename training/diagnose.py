"""Why the model does not harmonise: Bach's own alto, tenor and bass scored under the model (teacher-forced).

``python -m amt.training.diagnose MODEL CHORALE_DIR [--split valid] [--only bwv1.6 ...]`` feeds each chorale
as harmonisation shows it to the model: the soprano as anticipated controls, Bach's lower voices as the
events (``pad_and_interleave``, the first 1,024-token window). Per lower-voice note it records the
grammar-softmax bits of its onset, duration and note tokens and the model's pitch distribution given the
voice. For notes on a beat it asks whether the model prefers chord tones (pitch classes that fit one triad
or seventh with what the model has heard sounding there: the soprano and the voices already in the
sequence) and how it does at predicting Bach's pitch class beside the harmony prior (``harmonyprior``), the
triad rule, and the model weighted by each (as a sampling weight would).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from amt.errors import AmtError
from amt.sampling.chords import chord_tones
from amt.sampling.chordweight import CHORD_WEIGHT, chord_log_weights
from amt.sampling.harmonyprior import HarmonyPrior, shipped_prior
from amt.sampling.meter import beats
from amt.tokenization import ops
from amt.tokenization.notes import EVENT_NOTES, duration_ticks, end_ticks, onset_ticks
from amt.tokenization.sequences import pad_and_interleave
from amt.tokenization.vocab import ANTICIPATE, EVENTS_PER_SEQUENCE, MAX_PITCH
from amt.training.harmony import VOICE_PROGRAMS, WRITTEN
from amt.training.harmonyprior import rule_probabilities


def weighted(name: str, model_pc: np.ndarray, sounding: list[int], strong: bool, prior: HarmonyPrior
             ) -> np.ndarray:
    """The model's pitch-class distribution times one weight, renormalised: ``model``, ``model x prior``,
    ``model x chord weight`` (the sampler's, on strong beats the full weight, else its square root)."""
    if name == "model x prior":
        q = model_pc * prior.probabilities(sounding, strong)
    elif name == "model x chord weight":
        log_weights = chord_log_weights(sounding, strong, CHORD_WEIGHT)  # the sampler's default, offline
        q = model_pc * (1.0 if log_weights is None else np.exp(log_weights[:12]))
    else:
        q = model_pc
    return q / q.sum()


PREDICTORS = ("model", "model x chord weight", "model x prior", "prior", "rule")


def score_chorale(model, midi, prior: HarmonyPrior) -> dict[str, list]:
    """Teacher-forced records of one chorale: ``bits`` (onset, duration, note, pitch given the voice) per
    lower-voice note, and per note on a beat ``beat`` rows (strong, chord-tone mass or None, Bach's note a
    chord tone, top pitch a chord tone, then -log2 and hit of Bach's pitch class per ``PREDICTORS``)."""
    import torch

    from amt.training.blocks import block_cross_entropy

    events = midi.events[~ops.is_rest(midi.events)]
    instruments = ops.instrument_of(events[:, 2])
    lower = events[np.isin(instruments, [VOICE_PROGRAMS[v] for v in WRITTEN])]
    soprano = events[instruments == VOICE_PROGRAMS["soprano"]]
    triples = pad_and_interleave(lower, ops.to_controls(soprano))[:EVENTS_PER_SEQUENCE].copy()
    base = int(onset_ticks(triples).min())
    triples[:, 0] -= base  # a window's onsets count from its start, as in training
    tokens = torch.from_numpy(np.concatenate([[ANTICIPATE], triples.reshape(-1)]))[None]
    weight = model.output_weight()
    with torch.no_grad():
        hidden = model.hidden_states(tokens[:, :-1])
        nll = block_cross_entropy(hidden, weight, tokens[:, :-1], tokens[:, 1:], reduction="none")[0]
    nll = nll.float().numpy() / np.log(2)
    ticks, strong = beats(midi.meta, int(onset_ticks(triples).max()) + base + 2)
    bar_start = dict(zip(ticks.tolist(), strong.tolist(), strict=True))
    s_on, s_end, s_pitch = onset_ticks(soprano), end_ticks(soprano), ops.pitch_of(soprano[:, 2])
    records: dict[str, list] = {"bits": [], "beat": []}
    heard: list[tuple[int, int, int, int]] = []  # lower-voice notes already in the sequence
    onsets, durations = onset_ticks(triples), duration_ticks(triples)
    for k in np.flatnonzero(EVENT_NOTES.holds(triples[:, 2])):
        onset, length = int(onsets[k]) + base, int(durations[k])
        voice, pitch = int(ops.instrument_of(triples[k, 2])), int(ops.pitch_of(triples[k, 2]))
        rows = weight[EVENT_NOTES.token(MAX_PITCH * voice):EVENT_NOTES.token(MAX_PITCH * (voice + 1))]
        with torch.no_grad():
            log_p = torch.log_softmax((hidden[0, 3 * k + 2] @ rows.T).float(), -1).numpy()
        records["bits"].append((*nll[3 * k:3 * k + 3], -log_p[pitch] / np.log(2)))
        beat = next((b for b in (onset, onset - 1, onset + 1) if b in bar_start), None)
        if beat is not None:
            # Sounding as the model heard it: a note ending within a tick of the onset has ended.
            sounding = [int(p) for p in s_pitch[(s_on <= onset) & (s_end > onset + 1)]]
            sounding += [p for o, e, p, v in heard if o <= onset < e - 1 and v != voice]
            tones = chord_tones(sounding)
            model_pc = np.bincount(np.arange(MAX_PITCH) % 12, weights=np.exp(log_p), minlength=12)
            informative = 0 < tones.sum() < 12
            row = [bar_start[beat], float(model_pc[tones].sum()) if informative else None,
                   bool(tones[pitch % 12]), bool(tones[int(log_p.argmax()) % 12])]
            for name in PREDICTORS:
                if name == "prior":
                    q = prior.probabilities(sounding, bar_start[beat])
                elif name == "rule":
                    q = rule_probabilities(sounding)
                else:
                    q = weighted(name, model_pc, sounding, bar_start[beat], prior)
                row += [-float(np.log2(q[pitch % 12])), bool(q.argmax() == pitch % 12)]
            records["beat"].append(row)
        heard.append((onset, onset + length, pitch, voice))
    return records


def summarise(records: Sequence[dict[str, list]]) -> dict:
    """Pooled figures over chorales: bits per token kind, chord-tone mass on strong and other beats, and
    each predictor's bits and top-1 on Bach's pitch class."""
    bits = np.array([b for r in records for b in r["bits"]]).reshape(-1, 4)
    beat_rows = [row for r in records for row in r["beat"]]
    out: dict = {"notes": len(bits), "beat_notes": len(beat_rows),
                 "bits": dict(zip(("onset", "duration", "note", "pitch given voice"),
                                  bits.mean(axis=0).tolist(), strict=True))}
    for label, strong in (("strong beats", True), ("other beats", False)):
        rows = [row for row in beat_rows if row[0] == strong and row[1] is not None]
        out[label] = {"notes": len(rows), "model mass on chord tones": float(np.mean([r[1] for r in rows])),
                      "Bach's notes that are chord tones": float(np.mean([r[2] for r in rows])),
                      "model's top pitch a chord tone": float(np.mean([r[3] for r in rows]))}
    out["predictors"] = {name: {"bits": float(np.mean([row[4 + 2 * i] for row in beat_rows])),
                                "top1": float(np.mean([row[5 + 2 * i] for row in beat_rows]))}
                         for i, name in enumerate(PREDICTORS)}
    return out


def format_summary(summary: dict) -> str:
    """Markdown tables of :func:`summarise`."""
    b = summary["bits"]
    lines = [f"Teacher-forced bits per lower-voice note ({summary['notes']} notes): onset {b['onset']:.2f}, "
             f"duration {b['duration']:.2f}, note {b['note']:.2f} (of which pitch given the voice "
             f"{b['pitch given voice']:.2f})", "",
             "| notes on a beat | model mass on chord tones | Bach's notes that are chord tones | "
             "model's top pitch a chord tone | notes |", "|---|---:|---:|---:|---:|"]
    for label in ("strong beats", "other beats"):
        row = summary[label]
        cells = [row[key] for key in ("model mass on chord tones", "Bach's notes that are chord tones",
                                      "model's top pitch a chord tone")]
        lines.append(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {row['notes']} |")
    lines += ["", f"| Bach's pitch class given what the model heard ({summary['beat_notes']} notes on "
              "beats) | bits | top-1 |", "|---|---:|---:|"]
    for name, row in summary["predictors"].items():
        lines.append(f"| {name} | {row['bits']:.3f} | {row['top1']:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: score the chorales of a split and print the tables."""
    from amt.models import load_model
    from amt.tokenization.midi import read_midi
    from amt.training.music21_corpus import split_files

    parser = argparse.ArgumentParser(prog="python -m amt.training.diagnose",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model folder or Hugging Face Hub id")
    parser.add_argument("chorales", help="folder made by `python -m amt.training.music21_corpus`")
    parser.add_argument("--split", default="valid", choices=("train", "valid"), help="default valid")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these chorales (file stems)")
    args = parser.parse_args(argv)
    try:
        files = sorted(split_files(args.chorales, args.split))
        if args.only:
            files = [path for path in files if path.stem in set(args.only)]
        if not files:
            raise SystemExit(f"{args.chorales}: no chorales to score in its {args.split} split")
        model = load_model(args.model)
        model.eval()
        prior = shipped_prior()
        records = [score_chorale(model, read_midi(path), prior) for path in files]
        print(f"{args.model}, {len(files)} {args.split} chorales, teacher-forced (first 1,024-token window "
              "each)")
        print(format_summary(summarise(records)))
        return 0
    except AmtError as error:  # a bad folder or counts file: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
