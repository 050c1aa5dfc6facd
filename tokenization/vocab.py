"""The token vocabulary of the published Anticipatory Music Transformer models.

These constants are facts of the format (Thickstun et al., TMLR 2024; the ``stanford-crfm/music-*-800k``
checkpoints): changing any of them makes those checkpoints unusable. Time is counted in ticks of
1 / ``TIME_RESOLUTION`` seconds (10 ms).

An *event* is a triple of tokens ``(time, duration, note)``; a *control* is the same triple shifted by
``CONTROL_OFFSET``. ``note = 128 * instrument + pitch`` where instrument is the General MIDI program (0..127)
or ``DRUMS`` (128) for MIDI channel 10.
"""

from __future__ import annotations

CONTEXT_SIZE = 1024
"""Tokens per training sequence: a flag token and ``EVENTS_PER_SEQUENCE`` triples."""
EVENT_SIZE = 3
EVENTS_PER_SEQUENCE = (CONTEXT_SIZE - 1) // EVENT_SIZE  # 341

TIME_RESOLUTION = 100
"""Ticks per second."""
MAX_TIME_IN_SECONDS = 100
MAX_DURATION_IN_SECONDS = 10
MAX_TIME = TIME_RESOLUTION * MAX_TIME_IN_SECONDS  # 10_000 ticks: onsets are relative to the sequence
MAX_DUR = TIME_RESOLUTION * MAX_DURATION_IN_SECONDS  # 1_000 ticks: longer notes are clipped to MAX_DUR - 1

MAX_PITCH = 128
DRUMS = 128
"""The instrument number of MIDI channel 10 (index 9)."""
MAX_INSTR = 129
MAX_NOTE = MAX_PITCH * MAX_INSTR  # 16_512

# Event blocks.
TIME_OFFSET = 0
DUR_OFFSET = TIME_OFFSET + MAX_TIME  # 10_000
NOTE_OFFSET = DUR_OFFSET + MAX_DUR  # 11_000
REST = NOTE_OFFSET + MAX_NOTE  # 27_512: a note value meaning "no note", used to pad silences

# Control blocks: the event blocks shifted by CONTROL_OFFSET (there is no control REST).
CONTROL_OFFSET = REST + 1  # 27_513
ATIME_OFFSET = CONTROL_OFFSET + TIME_OFFSET  # 27_513
ADUR_OFFSET = CONTROL_OFFSET + DUR_OFFSET  # 37_513
ANOTE_OFFSET = CONTROL_OFFSET + NOTE_OFFSET  # 38_513

# Special tokens.
SPECIAL_OFFSET = ANOTE_OFFSET + MAX_NOTE  # 55_025
SEPARATOR = SPECIAL_OFFSET  # three in a row separate pieces in a packed training stream
AUTOREGRESS = SPECIAL_OFFSET + 1  # sequence flag: plain sequence, no controls
ANTICIPATE = SPECIAL_OFFSET + 2  # sequence flag: sequence with anticipated controls

VOCAB_SIZE = ANTICIPATE + 1  # 55_028

DELTA_SECONDS = 5
"""Anticipation interval: controls are interleaved this far ahead of the time they sound."""
DELTA = DELTA_SECONDS * TIME_RESOLUTION  # 500 ticks

REST_INTERVAL = TIME_RESOLUTION
"""Padding density: a REST event is inserted after every silence longer than this many ticks (1 s)."""

UNCLOSED_NOTE_DURATION = TIME_RESOLUTION // 4
"""Duration in ticks (250 ms) given to a note whose note-off never arrives."""
