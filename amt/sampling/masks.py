"""Token masks and the sampling rule: which tokens may be drawn at each position of an event triple.

The sampler never draws from the whole vocabulary. Each position of a triple has its own block: times
(``TIME_OFFSET``), durations (``DUR_OFFSET``) and notes (``NOTE_OFFSET`` .. ``REST``). Control and special
tokens lie outside every block, so they can never be sampled, and REST lies only in the note block, so it is
never drawn as a time or a duration (the reference implementation allowed both). Within a block, boolean
masks carry the musical constraints: time order, the window's time range, instruments and pitch range.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from amt.errors import GenerationError
from amt.tokenization.vocab import (
    DRUMS,
    DUR_OFFSET,
    MAX_DUR,
    MAX_INSTR,
    MAX_NOTE,
    MAX_PITCH,
    MAX_TIME,
    NOTE_OFFSET,
    TIME_OFFSET,
)

TIME_POSITION, DURATION_POSITION, NOTE_POSITION = 0, 1, 2
BLOCKS: tuple[tuple[int, int], ...] = (
    (TIME_OFFSET, MAX_TIME),
    (DUR_OFFSET, MAX_DUR),
    (NOTE_OFFSET, MAX_NOTE + 1),  # the note block ends with REST
)
"""(first token, size) of the block sampled at each position of a triple."""
REST_INDEX = MAX_NOTE
"""Index of REST inside the note block."""


def note_filter(instruments: Sequence[int] | None, pitch_range: tuple[int, int] | None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean ``[MAX_NOTE + 1]`` over the note block: which notes a request allows (REST always).

    ``instruments`` restricts the General MIDI programs (``DRUMS`` = 128 for channel 10); ``pitch_range``
    (inclusive MIDI pitches) applies to pitched instruments only, since drum "pitches" name drum sounds.
    """
    notes = torch.arange(MAX_NOTE, device=device)
    instrument, pitch = notes // MAX_PITCH, notes % MAX_PITCH
    allowed = torch.ones(MAX_NOTE, dtype=torch.bool, device=device)
    if instruments is not None:
        bad = [i for i in instruments if not 0 <= int(i) < MAX_INSTR]
        if bad:
            raise GenerationError(f"instruments must be 0..{MAX_INSTR - 1} ({DRUMS} = drums), got {bad}")
        allowed &= torch.isin(instrument, torch.tensor([int(i) for i in instruments], device=device))
    if pitch_range is not None:
        low, high = pitch_range
        allowed &= (instrument == DRUMS) | ((pitch >= low) & (pitch <= high))
    return torch.cat([allowed, torch.ones(1, dtype=torch.bool, device=device)])


def range_mask(low: torch.Tensor, high: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean ``[B, size]``: True where ``low[b] <= index <= high[b]``."""
    index = torch.arange(size, device=low.device)
    return (index >= low[:, None]) & (index <= high[:, None])


def note_mask(allowed_notes: torch.Tensor, instrument_ok: torch.Tensor, rest_ok: torch.Tensor,
              note_ok: torch.Tensor, notes_ok: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean ``[B, MAX_NOTE + 1]`` over the note block for each row.

    ``allowed_notes`` is the request's ``note_filter``; ``instrument_ok`` ``[B, MAX_INSTR]`` the instruments
    each row may still use (the instrument budget); ``rest_ok`` / ``note_ok`` ``[B]`` whether the row may
    draw REST / a real note here; ``notes_ok`` ``[B, MAX_NOTE]`` (optional) the notes each row may draw
    here (voice leading). A row left with nothing falls back to REST, so sampling stays defined.
    """
    notes = allowed_notes[None, :MAX_NOTE] & instrument_ok.repeat_interleave(MAX_PITCH, dim=1)
    notes &= note_ok[:, None]
    if notes_ok is not None:
        notes &= notes_ok
    mask = torch.cat([notes, rest_ok[:, None]], dim=1)
    mask[:, REST_INDEX] |= ~mask.any(dim=1)
    return mask


def relative_to_best_note(log_weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The note block's log-weights ``[B, MAX_NOTE + 1]`` shifted per row so that the best note ``mask``
    allows weighs 0; REST's weight is left as it is.

    Each constraint's weight moves mass among notes and never onto REST, but several together can leave
    every allowed note below 0 (a bass held over the bar line and a chord tone both weighed down), and REST
    then takes the mass they lost: a voice falls silent because the notes it could sing were all weighed."""
    notes = log_weights[:, :REST_INDEX]
    best = notes.masked_fill(~mask[:, :REST_INDEX], float("-inf")).amax(dim=1, keepdim=True)
    best = torch.where(torch.isfinite(best), best, torch.zeros_like(best))  # no note allowed: no shift
    return torch.cat([notes - best, log_weights[:, REST_INDEX:]], dim=1)


def sample(logits: torch.Tensor, mask: torch.Tensor, *, temperature: float, top_p: float,
           generator: torch.Generator | None, log_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Draw one index per row from ``logits`` ``[B, N]`` restricted to ``mask``, with temperature and
    nucleus (top-p) truncation: the smallest set of most likely tokens whose mass reaches ``top_p``.
    ``log_weights`` ``[B, N]`` (optional) are added after the temperature, so each token's probability is
    multiplied by its weight before the truncation."""
    scores = logits.float() / temperature
    if log_weights is not None:
        scores = scores + log_weights
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        # Drop a token when the mass before it already reaches top_p; the most likely token always stays.
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, 0.0)
        choice = torch.multinomial(probs, 1, generator=generator)
        return order.gather(1, choice).squeeze(1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
