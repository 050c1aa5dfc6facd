"""``amt --threads N`` and ``$AMT_THREADS`` set torch's CPU threads before a command runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from amt.cli import THREADS_ENV, default_threads, main

PROBE = ("import sys, torch; from amt.cli import main; code = main(sys.argv[1:]); "
         "print(code, torch.get_num_threads())")


def threads_after(*argv: str, env: str | None = None) -> tuple[int, int]:
    """(exit status, torch threads) after ``amt ARGV`` (default: tokenize a missing file, status 2) in a
    fresh process."""
    environ = {k: v for k, v in os.environ.items() if k not in (THREADS_ENV, "OMP_NUM_THREADS")}
    if env is not None:
        environ[THREADS_ENV] = env
    argv = argv if {"tokenize", "train"} & set(argv) else (*argv, "tokenize", "absent.mid")
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], env=environ,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_flag_then_environment_then_default():
    assert threads_after("--threads", "3", env="2") == (2, 3)
    assert threads_after("tokenize", "absent.mid", "--threads", "3") == (2, 3)  # after the command too
    assert threads_after(env="2") == (2, 2)
    assert threads_after() == (2, default_threads())


def test_default_is_half_the_cores_at_most_four(monkeypatch):
    for cores, expected in ((1, 1), (2, 1), (4, 2), (8, 4), (64, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert default_threads() == expected


def test_training_takes_every_core_shared_among_torchrun_processes(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads_after("train", "--config", "absent.yaml") == (2, os.cpu_count())
    assert threads_after("train", "--config", "absent.yaml", env="1") == (2, 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert default_threads(batch=True) == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_threads(batch=True) == 4


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--threads", "0"], None, "at least 1, not 0"),
    ([], "many", "AMT_THREADS must be a whole number of threads, not 'many'"),
])
def test_bad_thread_counts_are_errors(argv, env, message, monkeypatch, capsys):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(THREADS_ENV, env)
    assert main([*argv, "tokenize", "absent.mid"]) == 2
    assert message in capsys.readouterr().err
