"""The vocabulary block possible at each position of a sequence, and the cross-entropy over that block alone.

A sequence is a flag followed by triples, so the position of a target in its triple and the triple's time
token (already in the input) fix which tokens can come next:

- a triple's first token: an event time, a control time, or a SEPARATOR (the ``TIME`` block);
- after an event time: an event duration; after a control time: a control duration;
- after an event duration: an event note or REST; after a control duration: a control note;
- after a SEPARATOR: another SEPARATOR.

Within the ``TIME`` block the grammar also keeps time order, as the sequence builder and the sampler do
(:func:`time_floors`): an event onset lies between the previous event's onset (0 at the start of a piece)
and ``REST_INTERVAL`` after it (silences are padded with RESTs, so no gap is longer), and a control onset is
never before the previous control's. These are the onsets the sampler may draw.

Every token outside the block has probability zero under the grammar, so the model's full-vocabulary softmax
spends most of its compute (55,028 columns) on impossible tokens. :func:`block_cross_entropy` instead scores
each position against the rows of the output layer in its block (gathered from ``output_weight``), which is a
proper cross-entropy of the model restricted to the grammar: the softmax is renormalised over the block,
hence never above the full-vocabulary loss, and equal to it when the model puts no mass outside the block.
It is the training objective; evaluation reports the full-vocabulary numbers and, with ``--grammar``, this
one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from amt.tokenization.notes import (
    CONTROL_DURATIONS,
    CONTROL_NOTES,
    CONTROL_TIMES,
    EVENT_DURATIONS,
    EVENT_NOTES,
    EVENT_TIMES,
    is_control_token,
)
from amt.tokenization.vocab import EVENT_SIZE, MAX_TIME, REST, REST_INTERVAL, SEPARATOR, VOCAB_SIZE

TIME, EVENT_DURATION, CONTROL_DURATION, EVENT_NOTE, CONTROL_NOTE, SEPARATOR_BLOCK = range(6)
BLOCK_NAMES = ("time", "event duration", "control duration", "event note", "control note", "separator")


def _ranges(*spans: range) -> torch.Tensor:
    return torch.cat([torch.arange(span.start, span.stop) for span in spans])


BLOCK_TOKENS: tuple[torch.Tensor, ...] = (
    _ranges(EVENT_TIMES.tokens, CONTROL_TIMES.tokens, range(SEPARATOR, SEPARATOR + 1)),
    _ranges(EVENT_DURATIONS.tokens),
    _ranges(CONTROL_DURATIONS.tokens),
    _ranges(EVENT_NOTES.tokens, range(REST, REST + 1)),
    _ranges(CONTROL_NOTES.tokens),
    _ranges(range(SEPARATOR, SEPARATOR + 1)),
)
"""Vocabulary ids of each block, in the order of the block's logits."""


def _local_index() -> torch.Tensor:
    """``[len(BLOCK_TOKENS), VOCAB_SIZE]``: a token's column in each block's logits (-1 if not in it)."""
    table = torch.full((len(BLOCK_TOKENS), VOCAB_SIZE), -1, dtype=torch.long)
    for block, tokens in enumerate(BLOCK_TOKENS):
        table[block, tokens] = torch.arange(len(tokens))
    return table


LOCAL_INDEX = _local_index()


def target_blocks(input_ids: torch.Tensor) -> torch.Tensor:
    """The block of each next token: ``[B, T]`` ids of a flag + triples sequence -> ``[B, T]`` block ids.

    Position ``t`` holds the block of token ``t + 1`` (the last position's block assumes the sequence goes
    on). Position 0 (the flag) predicts a time; positions inside a triple look back at its time token.
    """
    _, length = input_ids.shape
    position = torch.arange(length, device=input_ids.device)
    slot = position % EVENT_SIZE  # 0: flag or note -> a time next; 1: time -> duration; 2: duration -> note
    # The time token of the triple the target belongs to: for slot 1 it is the input itself, for slot 2
    # the input one step back.
    time_token = torch.where(slot == 2, torch.roll(input_ids, 1, dims=1), input_ids)
    is_control = is_control_token(time_token)
    is_separator = time_token == SEPARATOR
    blocks = torch.full_like(input_ids, TIME)
    duration = slot == 1
    note = slot == 2
    blocks = torch.where(duration, torch.where(is_control, CONTROL_DURATION, EVENT_DURATION), blocks)
    blocks = torch.where(note, torch.where(is_control, CONTROL_NOTE, EVENT_NOTE), blocks)
    return torch.where((duration | note) & is_separator, SEPARATOR_BLOCK, blocks)


def time_floors(input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The earliest onsets the grammar allows next: ``[B, T]`` event and control onsets (ticks) of the latest
    event and the latest control at or before each position, counted from the last separator (0 where the
    piece has none yet)."""
    # A running maximum of (segment number, onset + 1) gives, per position, the latest onset of its segment:
    # onsets only grow within a segment, and a separator starts a segment whose key exceeds all before it.
    segment = (input_ids == SEPARATOR).cumsum(dim=1) * (MAX_TIME + 1)
    floors = []
    for times in (EVENT_TIMES, CONTROL_TIMES):
        onset = times.value(input_ids)
        mine = times.holds(input_ids)
        latest = (segment + torch.where(mine, onset + 1, 0)).cummax(dim=1).values - segment
        floors.append((latest - 1).clamp(min=0))
    return floors[0], floors[1]


def _time_order_mask(event_floor: torch.Tensor, control_floor: torch.Tensor) -> torch.Tensor:
    """``[N, len(TIME block)]``: the time-block columns (event times, control times, SEPARATOR) allowed."""
    times = torch.arange(MAX_TIME, device=event_floor.device)
    events = (times >= event_floor[:, None]) & (times <= event_floor[:, None] + REST_INTERVAL)
    controls = times >= control_floor[:, None]
    return torch.cat([events, controls, events.new_ones(len(events), 1)], dim=1)


def block_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, input_ids: torch.Tensor,
                        targets: torch.Tensor, reduction: str = "mean",
                        note_weight: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy (nats per target token) over the vocabulary block possible at each position.

    ``hidden`` ``[B, T, D]`` are the final hidden states for ``input_ids`` ``[B, T]``; ``weight`` ``[V, D]``
    the output layer; ``targets`` ``[B, T]`` the next tokens. The mean runs over all ``B * T`` targets, the
    same normalisation as the full-vocabulary loss; ``reduction="none"`` returns the ``[B, T]`` per-target
    losses instead (evaluation of the grammar-restricted model). A target outside its block (a malformed
    sequence) raises ValueError rather than being silently scored. ``note_weight`` multiplies the loss of
    each target that is an event's note (training's ``note_loss_weight``).
    """
    blocks = target_blocks(input_ids).reshape(-1)
    event_floor, control_floor = (f.reshape(-1) for f in time_floors(input_ids))
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    local = LOCAL_INDEX.to(targets.device)
    losses = hidden.new_zeros(targets.shape, dtype=torch.float32)
    for block, tokens in enumerate(BLOCK_TOKENS):
        rows = (blocks == block).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        columns = local[block, targets[rows]]
        if bool((columns < 0).any()):
            raise ValueError(f"a target token lies outside the {BLOCK_NAMES[block]} block")
        if len(tokens) == 1:
            continue  # a one-token block is certain: zero loss, no gradient
        logits = hidden[rows] @ weight[tokens.to(weight.device)].T
        logits = logits.float()
        if block == TIME:
            allowed = _time_order_mask(event_floor[rows], control_floor[rows])
            if not bool(allowed.gather(1, columns[:, None]).all()):
                raise ValueError("a target onset breaks time order (before the previous onset of its kind, "
                                 f"or an event more than {REST_INTERVAL} ticks after the previous one)")
            logits = logits.masked_fill_(~allowed, -torch.inf)
        block_losses = F.cross_entropy(logits, columns, reduction="none")
        losses[rows] = block_losses * note_weight if block == EVENT_NOTE else block_losses
    return losses.reshape(input_ids.shape) if reduction == "none" else losses.sum() / targets.numel()
