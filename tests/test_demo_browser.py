"""End to end in a real browser: headless Chromium opens the demo page, uploads a MIDI file, generates one
variation, and finds its audio player and MIDI download; on a file whose parts all share program 0, lists
the parts by number and rewrites a span while keeping one part; and picks models, showing load errors.

Needs Debian's ``chromium`` (or ``$AMT_CHROMIUM``) and the ``playwright`` Python package; Playwright's own
browser downloads are not used. Set ``AMT_DEMO_SCREENSHOT=docs/demo.png`` to save a screenshot of the page,
and ``AMT_DEMO_MODEL=FOLDER`` to run a trained model instead of a tiny random one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from amt.demo.audio import find_renderer
from amt.tokenization.midi import read_midi

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("AMT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if importlib.util.find_spec("playwright") is None:
    pytest.skip("the playwright Python package is not installed (pip install playwright)",
                allow_module_level=True)
if CHROMIUM is None:
    pytest.skip("no Chromium executable (Debian: apt-get install chromium; or set AMT_CHROMIUM)",
                allow_module_level=True)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 60_000
EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"
EXAMPLE = "bach_chorale_bwv66.6"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def open_page(url: str, tmp_path: Path, *, height: int = 900) -> Iterator:
    """A page of a fresh headless Chromium at ``url`` (slow loads allowed: a busy 2-core machine), closed
    afterwards."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": height},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            yield page
        finally:
            context.close()


def generate_one(page, *, seed: int, status: str, filename: str) -> bytes:
    """Ask the page for one variation with ``seed``, wait until the status line says ``status`` and the
    piano roll shows, and return the bytes of the MIDI download, named ``filename``."""
    from playwright.sync_api import expect

    page.locator("#variations input[type=number]").fill("1")
    page.locator("#seed textarea, #seed input").first.fill(str(seed))
    page.locator("#generate").click()
    expect(page.locator("#status")).to_contain_text(status, timeout=TIMEOUT_MS)
    expect(page.locator("#roll-1 img")).to_be_visible()
    download = page.locator("#midi-1 a[download]").first
    expect(download).to_have_attribute("download", filename)
    return page.request.get(download.get_attribute("href")).body()


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    from amt.demo.app import DemoApp
    from amt.models import create_model, load_model, tiny_config

    folder = os.environ.get("AMT_DEMO_MODEL")  # a trained model, for a screenshot worth showing
    if not folder:
        folder = tmp_path_factory.mktemp("tiny-model")
        create_model(tiny_config()).save_pretrained(folder)
    app = DemoApp(load_model(folder, device="cpu"), workdir=tmp_path_factory.mktemp("demo-work"))
    port = free_port()
    app.launch(port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def test_upload_generate_listen_and_download(demo_url, tmp_path):
    from playwright.sync_api import expect

    example = EXAMPLES / f"{EXAMPLE}.mid"
    with open_page(demo_url, tmp_path) as page:
        page.locator("#upload input[type=file]").set_input_files(str(example))
        expect(page.locator("#summary")).to_contain_text(EXAMPLE)
        expect(page.locator("#keep")).to_contain_text("Soprano")  # the melody, preselected

        page.locator("#task").get_by_text("continue", exact=True).click()
        page.locator("#continue-seconds input[type=number]").fill("2")
        midi = generate_one(page, seed=7, status="seed 7", filename=f"{EXAMPLE}-continue-1.mid")
        assert midi[:4] == b"MThd"
        expect(page.locator("#roll-2")).to_have_count(0)  # one variation asked, one shown
        if find_renderer()[0] is not None:
            # The browser decoded the rendered audio: the player shows a length.
            expect(page.locator("#audio-1 #duration")).to_have_text(re.compile(r"^\d+:\d\d$"))
            expect(page.locator("#audio-1 #duration")).not_to_have_text("0:00")
            audio_link = page.locator("#audio-1 a[download]").first
            expect(audio_link).to_have_attribute("download", f"{EXAMPLE}-continue-1.flac")
            assert page.request.get(audio_link.get_attribute("href")).body()[:4] == b"fLaC"
        else:
            expect(page.locator("#audio-note")).to_contain_text("Audio is unavailable")
        screenshot = os.environ.get("AMT_DEMO_SCREENSHOT")
        if screenshot:
            page.screenshot(path=screenshot, full_page=True)

        # A bad upload: a sentence in the page, the previous results cleared, no traceback.
        page.locator("#upload button[aria-label='Clear']").first.click()
        not_midi = tmp_path / "not-midi.mid"
        not_midi.write_text("a text file in disguise")
        page.locator("#upload input[type=file]").set_input_files(str(not_midi))
        expect(page.locator("#status")).to_contain_text("not-midi.mid is not a MIDI file")
        expect(page.locator("#roll-1")).to_be_hidden()
        expect(page.locator("body")).not_to_contain_text("Traceback")


def test_parts_by_number_and_an_infill_that_keeps_a_part(demo_url, tmp_path):
    from partfiles import song
    from playwright.sync_api import expect

    path = tmp_path / "song.mid"
    path.write_bytes(song(names=("Voice", None, None)))  # three parts on program 0, two without a name
    with open_page(demo_url, tmp_path, height=1000) as page:
        page.locator("#upload input[type=file]").set_input_files(str(path))
        expect(page.locator("#summary")).to_contain_text("3 parts")
        keep = page.locator("#keep")
        expect(keep).to_contain_text("1 Voice (Acoustic Grand Piano)")  # the melody, preselected
        keep.locator("input").first.click()  # open the list: every part, by number
        options = page.get_by_role("option")
        expect(options.filter(has_text="2 Acoustic Grand Piano: 48 notes, chords")).to_have_count(1)
        expect(options.filter(has_text="3 Acoustic Grand Piano: 8 notes, bass")).to_have_count(1)
        page.keyboard.press("Escape")

        page.locator("#task").get_by_text("infill", exact=True).click()
        expect(keep).to_be_visible()  # infill keeps chosen parts inside the span too
        page.locator("#span-unit").get_by_text("bars", exact=True).click()
        page.locator("#span-start input[type=number]").fill("3")
        page.locator("#span-end input[type=number]").fill("4")
        written = read_midi(generate_one(page, seed=3, status="keeping part 1", filename="song-infill-1.mid"))
        voice = np.array(written.meta.track_names)[written.tracks] == "Voice"
        original = read_midi(path)
        assert np.array_equal(written.events[voice], original.events[original.tracks == 1])
        page.screenshot(path=os.environ.get("AMT_DEMO_PARTS_SCREENSHOT") or str(tmp_path / "parts.png"),
                        full_page=True)


@pytest.fixture(scope="module")
def picker_url(tmp_path_factory):
    """A demo started with two tiny models and a broken folder on its command line, offline."""
    import huggingface_hub.constants

    from amt.demo.app import DemoApp
    from amt.models import create_model, load_model, tiny_config

    root = tmp_path_factory.mktemp("picker")
    for name, backbone in (("tiny-a", "gpt2"), ("tiny-b", "mamba")):
        create_model(tiny_config(backbone)).save_pretrained(root / name)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    folders = [str(root / name) for name in ("tiny-a", "tiny-b", "broken")]
    app = DemoApp(load_model(folders[0], device="cpu"), model_name=folders[0], models=folders[1:],
                  workdir=tmp_path_factory.mktemp("picker-work"))
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:  # a published model must not be downloaded in a test
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root / "hub-cache"))
        app.launch(port=port, block=False, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            app.close()


def test_model_picker_lists_loads_and_shows_errors(picker_url, tmp_path):
    from playwright.sync_api import expect

    with open_page(picker_url, tmp_path) as page:
        status = page.locator("#model-status")
        expect(status).to_contain_text("tiny-a")
        picker = page.locator("#model input").first

        def pick(label: str) -> None:
            # A fresh list each time: one left open (or closing) from the last pick may not take a pick.
            picker.evaluate("input => input.blur()")
            expect(page.get_by_role("option")).to_have_count(0)
            picker.click()
            option = page.get_by_role("option").filter(has_text=label)
            expect(option).to_have_count(1)
            option.dispatch_event("mousedown")  # Gradio picks on mousedown; the list may still be moving

        picker.click()  # the list: built-in, the folders given, the published models with their size
        options = page.get_by_role("option")
        expect(options.filter(has_text="built-in model")).to_have_count(1)
        expect(options.filter(has_text="tiny-b")).to_have_count(1)
        medium = "music-medium-800k (downloaded on first use: 360 M parameters, about 1.4 GB)"
        expect(options.filter(has_text=medium)).to_have_count(1)
        expect(options.filter(has_text="downloaded on first use")).to_have_count(3)

        pick("tiny-b")
        expect(status).to_contain_text("tiny-b")
        pick("broken")  # an error in the page; the loaded model stays
        expect(status).to_contain_text("Could not load")
        expect(status).to_contain_text("config.json")
        expect(picker).to_have_value(re.compile("tiny-b"))
        pick("music-small-800k")  # offline, with an empty Hub cache
        expect(status).to_contain_text("HF_HUB_OFFLINE")
        expect(picker).to_have_value(re.compile("tiny-b"))  # the loaded model stays
        expect(page.locator("body")).not_to_contain_text("Traceback")
        pick("built-in model")
        expect(status).to_contain_text("Model: default")
