"""The harmony prior: voicings, transposition invariance, backoff, counting from chorales, the counts file."""

from __future__ import annotations

import numpy as np
import pytest

from amt.errors import AmtError
from amt.sampling.harmonyprior import DOUBLINGS, HarmonyPrior, canonical, rotate, voicing
from amt.tokenization.midi import MidiMeta, midi_tokens_from_notes
from amt.training.harmony import VOICE_PROGRAMS
from amt.training.harmonyprior import count_chorales, evaluate_prior, rule_probabilities


def test_voicings_count_doublings_and_rotate():
    assert voicing([60, 48, 64]) == (2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)  # C twice, E once
    assert max(voicing([60] * 6)) == DOUBLINGS
    assert rotate(voicing([0]), 3) == voicing([3]) and rotate(voicing([11]), 1) == voicing([0])
    c_major = voicing([0, 4, 7])
    low, shifts = canonical(c_major)
    assert all(rotate(c_major, k) == low for k in shifts) and len(shifts) == 1
    assert canonical(voicing([2, 6, 9]))[0] == low  # D major: the same shape
    assert len(canonical(voicing([0, 3, 6, 9]))[1]) == 4  # a diminished seventh maps onto itself 4 ways
    assert canonical(voicing([0, 0, 4]))[0] != canonical(voicing([0, 4]))[0]  # a doubling is another voicing


def test_counts_are_transposition_invariant_and_back_off():
    prior = HarmonyPrior()
    for _ in range(50):
        prior.add([0, 4], 7, strong=True)  # with C and E, the voice took G
    p = prior.probabilities([0, 4], True)
    assert p.argmax() == 7 and abs(p.sum() - 1) < 1e-9
    assert prior.probabilities([2, 6], True).argmax() == 9  # D F# -> A: the same shape a tone higher
    assert np.allclose(prior.probabilities([5], True), 1 / 12)  # nothing counted for one note: uniform
    unseen = prior.probabilities([0, 4, 10], True)  # backs off to the voicings one note smaller, one is C-E
    assert unseen[7] > 1 / 12 and abs(unseen.sum() - 1) < 1e-9
    assert np.allclose(prior.probabilities([0, 4], False), 1 / 12)  # other beats counted apart


def test_a_doubled_note_is_told_from_a_single_one():
    prior = HarmonyPrior()
    for _ in range(50):
        prior.add([60, 64], 0, strong=True)  # C and E: the voice doubled the root...
        prior.add([48, 60, 64], 7, strong=True)  # ...but with the root already doubled it took the fifth
    assert prior.probabilities([60, 64], True).argmax() == 0
    assert prior.probabilities([48, 60, 64], True).argmax() == 7
    assert prior.probabilities([50, 62, 66], True).argmax() == 9  # the same a tone higher


def test_text_round_trip_and_bad_line():
    prior = HarmonyPrior()
    prior.add([0, 3], 8, strong=False, weight=2)
    again = HarmonyPrior.from_text(prior.to_text("a header"))
    assert np.allclose(again.probabilities([1, 4], False), prior.probabilities([1, 4], False))
    counts = " 1" * 12
    for bad in ("1 3 1 2 3", "1 100100000000 1 2 3", f"1 {'9' * 12}{counts}", f"2 {'0' * 12}{counts}"):
        with pytest.raises(AmtError, match="line 1"):
            HarmonyPrior.from_text(bad)
    assert prior.probabilities([1, 4], False).argmax() == 9


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
