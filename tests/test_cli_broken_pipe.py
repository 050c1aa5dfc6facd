"""``amt tokenize FILE | head``: a reader that stops early ends the command quietly, as with any Unix tool."""

import subprocess
import sys

from conftest import REFERENCE_DIR


def test_tokenize_into_a_closed_pipe_exits_quietly():
    # About 100 kB of tokens: more than a pipe holds, so the writer is still printing when the reader leaves.
    midi = REFERENCE_DIR / "beethoven_opus18no1_movement1.mid"
    process = subprocess.Popen([sys.executable, "-m", "amt.cli", "tokenize", "--pad", str(midi)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(100)
    process.stdout.close()  # like `head -c 100`
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert process.returncode == 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a pipe
