"""Bad MIDI input gets a MidiError naming the file and the reason, quickly: never a traceback or a hang."""

from __future__ import annotations

import io
import time

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amt.cli import main
from amt.errors import MidiError
from amt.tokenization.midi import MAX_TRACKS, MidiTokens, read_midi


def midi_bytes(*tracks, ticks_per_beat=96) -> bytes:
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi.tracks.append(mido.MidiTrack(messages))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def chunk(body: bytes) -> bytes:
    return b"MTrk" + len(body).to_bytes(4, "big") + body


def header(tracks: int, division: int = 96, fmt: int = 1) -> bytes:
    return (
        b"MThd\x00\x00\x00\x06"
        + fmt.to_bytes(2, "big")
        + tracks.to_bytes(2, "big")
        + division.to_bytes(2, "big")
    )


NOTE = chunk(b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00")


def tempo_file(us: int) -> bytes:
    return header(1) + chunk(b"\x00\xff\x51\x03" + us.to_bytes(3, "big") + NOTE[8:])


BAD = {
    "empty file": (b"", "empty"),
    "not a MIDI file": (b"RIFF\x00\x00\x00\x00WAVEfmt ", "not a MIDI"),
    "header only, cut": (b"MThd\x00\x00\x00\x06\x00", "truncated"),
    "track cut off": (header(1) + NOTE[:-5], "truncated"),
    "message cut off": (header(1) + chunk(b"\x00\x90\x3c"), "truncated"),
    "missing tracks": (header(3) + NOTE, "announces 3 tracks"),
    "SMPTE division": (header(1, division=0xE728) + NOTE, "SMPTE"),
    "zero division": (header(1, division=0) + NOTE, "ticks per quarter"),
    "zero tempo": (tempo_file(0), "tempo of 0"),
    "absurd tempo": (tempo_file(3), "absurd tempo"),
    "short set_tempo": (header(1) + chunk(b"\x00\xff\x51\x01\x07" + NOTE[8:]), "set_tempo"),
    "pitch above 127": (
        header(1) + chunk(b"\x00\x90\xbc\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"),
        "pitch above 127",
    ),
    "running status first": (header(1) + chunk(b"\x00\x3c\x40\x00\xff\x2f\x00"), "running status"),
    "undefined status": (header(1) + chunk(b"\x00\xf4\x00\x00\xff\x2f\x00"), "invalid message"),
    "format 2": (header(1, fmt=2) + NOTE, "format 2"),
    "absurd length": (
        header(1)
        + chunk(
            b"\x00\xff\x51\x03\xff\xff\xff"
            + b"\xff\xff\xff\x7f\x90\x3c\x40"
            + b"\x00\x80\x3c\x00\x00\xff\x2f\x00"
        ),
        "24 hours",
    ),
    "too many tracks": (header(MAX_TRACKS + 1) + chunk(b"\x00\xff\x2f\x00") * (MAX_TRACKS + 1), "tracks"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_midi_error(case):
    data, reason = BAD[case]
    start = time.perf_counter()
    with pytest.raises(MidiError) as raised:
        read_midi(data, name=f"{case}.mid")
    assert reason in str(raised.value)
    assert raised.value.source == f"{case}.mid"
    assert time.perf_counter() - start < 5  # a generous bound: these fail in milliseconds


def test_good_variants_of_the_bad_cases_read():
    assert len(read_midi(header(1) + NOTE)) == 1
    assert len(read_midi(tempo_file(1_000))) == 1  # the fastest tempo accepted
    assert len(read_midi(midi_bytes([mido.Message("note_on", note=127, velocity=1)]))) == 1


def test_huge_file_refused_before_reading(tmp_path):
    path = tmp_path / "huge.mid"
    with open(path, "wb") as f:
        f.write(header(1) + NOTE)
        f.truncate(200 * 2**20)  # sparse: 200 MB on paper, nothing to read
    start = time.perf_counter()
    with pytest.raises(MidiError, match="over the"):
        read_midi(path)
    assert time.perf_counter() - start < 1
    with pytest.raises(MidiError, match="over the"):
        read_midi(header(1) + NOTE, max_bytes=10)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MidiError, match="cannot read"):
        read_midi(tmp_path / "nope.mid")
    with pytest.raises(MidiError, match="cannot read"):
        read_midi(tmp_path)


def test_cli_reports_bad_files_without_traceback(tmp_path, capsys):
    path = tmp_path / "broken.mid"
    path.write_bytes(BAD["track cut off"][0])
    assert main(["tokenize", str(path)]) == 2
    err = capsys.readouterr().err
    assert "broken.mid" in err and "truncated" in err and "Traceback" not in err


def test_truncations_of_a_real_file(reference_dir):
    data = (reference_dir / "synth_tempo_trumpet_drums.mid").read_bytes()
    for cut in range(len(data)):
        with pytest.raises(MidiError):
            read_midi(data[:cut])


@pytest.fixture(scope="module")
def seeds(reference_dir) -> list[bytes]:
    return [
        (reference_dir / f"{name}.mid").read_bytes() for name in ("synth_tempo_trumpet_drums", "bach_bwv66.6")
    ]


@st.composite
def mutations(draw):
    """A list of edits: flip a byte, overwrite a run, delete a run, insert bytes, or cut the end."""
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["set", "delete", "insert", "cut"]),
                st.floats(0, 1),
                st.binary(min_size=1, max_size=6),
            ),
            min_size=1,
            max_size=4,
        )
    )


def mutate(data: bytes, edits) -> bytes:
    buffer = bytearray(data)
    for kind, where, payload in edits:
        at = int(where * len(buffer))
        if kind == "set":
            buffer[at : at + len(payload)] = payload
        elif kind == "delete":
            del buffer[at : at + len(payload)]
        elif kind == "insert":
            buffer[at:at] = payload
        else:
            del buffer[at:]
    return bytes(buffer)


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(which=st.integers(0, 1), edits=mutations())
def test_fuzz_mutated_reference_files(seeds, which, edits):
    """Fuzzing with hypothesis: 1,500 mutated copies of two real reference files per run (derandomized, so
    the same 1,500 every run; about 10 s here). Anything but MidiTokens or MidiError fails the test."""
    data = mutate(seeds[which], edits)
    try:
        result = read_midi(data)
    except MidiError:
        return
    assert isinstance(result, MidiTokens)
    assert result.events.shape == (len(result.velocities), 3)
    assert (result.events[:, 0] >= 0).all()
