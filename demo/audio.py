"""Server-side audio for the demo: MIDI files rendered to FLAC with FluidSynth and a General MIDI soundfont.

FluidSynth and the soundfont are system packages (Debian: ``fluidsynth`` and ``fluid-soundfont-gm``). They are
optional: without them :func:`find_renderer` returns ``None`` with a reason, and the demo shows that reason
instead of an audio player. FLAC keeps files about half the size of WAV and every current browser plays it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amt.errors import AmtError
from amt.fileio import atomic_paths

SOUNDFONT_ENV = "AMT_SOUNDFONT"
"""Environment variable naming a ``.sf2`` file to use instead of the searched locations."""

SOUNDFONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian/Ubuntu fluid-soundfont-gm
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",  # Fedora, Arch
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)

SAMPLE_RATE = 32_000
"""Hz: plenty for General MIDI samples, and a third smaller than 48 kHz."""
GAIN = 1.0
"""FluidSynth's default gain (0.2) renders far too quietly for a web player."""
RENDER_TIMEOUT = 120.0
"""Seconds before a render is abandoned (a 30 s piece takes well under one)."""


class AudioError(AmtError):
    """Audio rendering failed for a reason other than missing software."""


@dataclass(frozen=True)
class Renderer:
    """A FluidSynth executable and the soundfont it plays MIDI files with."""

    fluidsynth: Path
    soundfont: Path

    def render(self, midi_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
        """Render ``midi_path`` to the FLAC file ``out_path`` (written atomically) and return its path."""
        out_path = Path(out_path)
        with atomic_paths([out_path]) as (tmp_path,):
            command = [
                str(self.fluidsynth), "-ni", "-q", "-g", str(GAIN), "-r", str(SAMPLE_RATE), "-T", "flac",
                "-F", str(tmp_path), str(self.soundfont), str(midi_path),
            ]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=RENDER_TIMEOUT,
                                        check=False)
            except subprocess.TimeoutExpired as error:
                raise AudioError(
                    f"FluidSynth took more than {RENDER_TIMEOUT:.0f} s to render {midi_path}"
                ) from error
            if result.returncode != 0 or not tmp_path.is_file() or tmp_path.stat().st_size == 0:
                detail = (result.stderr or result.stdout).strip().splitlines()
                reason = detail[-1] if detail else f"exit status {result.returncode}"
                raise AudioError(f"FluidSynth could not render {midi_path}: {reason}")
        return out_path


def find_soundfont() -> Path | None:
    """The General MIDI soundfont to use: ``$AMT_SOUNDFONT`` if set, else the first system one found."""
    configured = os.environ.get(SOUNDFONT_ENV)
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    return next((Path(p) for p in SOUNDFONT_CANDIDATES if Path(p).is_file()), None)


def find_renderer() -> tuple[Renderer | None, str]:
    """Locate FluidSynth and a soundfont: ``(renderer, "")``, or ``(None, why audio is unavailable)``."""
    executable = shutil.which("fluidsynth")
    soundfont = find_soundfont()
    if executable is None:
        return None, (
            "Audio is unavailable: FluidSynth is not installed "
            "(Debian/Ubuntu: `sudo apt-get install fluidsynth fluid-soundfont-gm`)."
        )
    if soundfont is None:
        configured = os.environ.get(SOUNDFONT_ENV)
        where = f"${SOUNDFONT_ENV}={configured} is not a file" if configured else "no General MIDI soundfont"
        return None, (
            f"Audio is unavailable: {where} (Debian/Ubuntu: `sudo apt-get install fluid-soundfont-gm`, "
            f"or set ${SOUNDFONT_ENV} to a .sf2 file)."
        )
    return Renderer(Path(executable), soundfont), ""
