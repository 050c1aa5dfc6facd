"""The harmony prior: transposition invariance, backoff, counting from chorales, the counts file."""

from __future__ import annotations

import numpy as np
import pytest

from amt.errors import AmtError
from amt.sampling.harmonyprior import HarmonyPrior, canonical, prior_log_weights, rotate
from amt.tokenization.midi import MidiMeta, midi_tokens_from_notes
from amt.training.harmony import VOICE_PROGRAMS
from amt.training.harmonyprior import count_chorales, evaluate_prior, rule_probabilities


def test_canonical_rotation_and_symmetric_sets():
    assert rotate(0b1, 3) == 0b1000 and rotate(1 << 11, 1) == 1
    low, shifts = canonical(0b10010001)  # C E G
    assert all(rotate(0b10010001, k) == low for k in shifts) and len(shifts) == 1
    assert len(canonical(0b001001001001)[1]) == 4  # a diminished seventh maps onto itself 4 ways


def test_counts_are_transposition_invariant_and_back_off():
    prior = HarmonyPrior()
    for _ in range(50):
        prior.add([0, 4], 7, strong=True)  # with C and E, the voice took G
    p = prior.probabilities([0, 4], True)
    assert p.argmax() == 7 and abs(p.sum() - 1) < 1e-9
    assert prior.probabilities([2, 6], True).argmax() == 9  # D F# -> A: the same shape a tone higher
    assert np.allclose(prior.probabilities([5], True), 1 / 12)  # nothing counted for one note: uniform
    unseen = prior.probabilities([0, 4, 10], True)  # backs off to its subsets, which include C-E
    assert unseen[7] > 1 / 12 and abs(unseen.sum() - 1) < 1e-9
    assert np.allclose(prior.probabilities([0, 4], False), 1 / 12)  # other beats counted apart


def test_text_round_trip_and_bad_line():
    prior = HarmonyPrior()
    prior.add([0, 3], 8, strong=False, weight=2)
    again = HarmonyPrior.from_text(prior.to_text("a header"))
    assert np.allclose(again.probabilities([1, 4], False), prior.probabilities([1, 4], False))
    with pytest.raises(AmtError, match="line 1"):
        HarmonyPrior.from_text("1 3 1 2 3\n")
    weights = prior_log_weights([1, 4], False, prior)
    assert weights.shape == (12,) and weights.argmax() == 9


def triad_chorale(lines: dict[str, int]):
    """Eight beats of one chord, one note per voice per beat, two bars of 4/4."""
    meta = MidiMeta(ticks_per_beat=480, tempos=((0, 60.0),), time_signatures=((0, 4, 4),))
    onsets, pitches, programs = [], [], []
    for voice, pitch in lines.items():
        onsets += list(range(8))
        pitches += [pitch] * 8
        programs += [VOICE_PROGRAMS[voice]] * 8
    return midi_tokens_from_notes(np.array(onsets, float), np.ones(len(onsets)), np.array(pitches),
                                  np.array(programs), meta=meta)


def test_counted_from_a_chorale_favours_its_chords():
    # C major triad on every beat, root doubled: soprano E, alto G, tenor C, bass C.
    prior = count_chorales([triad_chorale({"soprano": 64, "alto": 67, "tenor": 60, "bass": 48})])
    assert prior.observations(True) == 2 * 4 * 7  # 2 bar starts, 4 voices, 7 subsets of the others
    p = prior.probabilities([4, 7], True)  # E and G sound: the missing root
    assert p.argmax() == 0
    assert prior.probabilities([4, 7], False).argmax() == 0


def test_evaluation_scores_prior_rule_and_uniform():
    prior = count_chorales([triad_chorale({"soprano": 64, "alto": 67, "tenor": 60, "bass": 48})])
    # Scored on the same chord a fourth higher: the prior knows the shape, so it beats the rule and uniform.
    scores = evaluate_prior(prior, [triad_chorale({"soprano": 69, "alto": 72, "tenor": 65, "bass": 53})])
    assert scores["prior"]["beats"] == 8 * 3
    assert scores["prior"]["bits"] < scores["rule"]["bits"] < scores["uniform"]["bits"]
    assert abs(scores["uniform"]["bits"] - np.log2(12)) < 1e-9 and scores["prior"]["top1"] == 1.0
    rule = rule_probabilities([0, 4])
    assert abs(rule.sum() - 1) < 1e-9 and rule[7] > rule[1]  # C E + G fits; + C# fits no chord


def test_command_line_refuses_a_folder_that_is_no_conversion(tmp_path, capsys):
    from amt.training.harmonyprior import main

    assert main([str(tmp_path / "missing")]) == 2
    error = capsys.readouterr().err
    assert "not a music21 conversion manifest" in error and error.count("\n") == 1
