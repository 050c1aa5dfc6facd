"""The attributions file of a model trained on Mutopia pieces: every CC-BY piece it learned from, once."""

import json
from pathlib import Path

import pytest

from amt.errors import AmtError
from amt.training.attributions import attributions_markdown, main


def _file(piece: str, split: str, family: str, licence: str, title: str, **extra) -> dict:
    return {"path": f"{piece}/{title}.mid", "piece": piece, "split": split, "licence_family": family,
            "licence": licence, "title": title, "composer": "A. Composer", "typesetter": "T. Setter",
            "mutopia_id": f"Mutopia-2010/01/01-{len(piece)}", **extra}


MANIFEST = {"source": "The Mutopia Project", "files": [
    _file("ftp/A/one", "train", "cc-by", "CC BY 4.0", "First Sonata, movement 1"),
    _file("ftp/A/one", "train", "cc-by", "CC BY 4.0", "First Sonata, movement 2"),  # same piece, 2 files
    _file("ftp/A/two", "valid", "cc-by", "CC BY 3.0", "Rondo"),
    _file("ftp/A/three", "test", "cc-by", "CC BY 2.5", "Reserved Waltz"),
    _file("ftp/A/four", "train", "public-domain", "Public Domain", "Old Air"),
    _file("ftp/A/five", "train", "cc-by", "CC BY", "Undated Licence"),
]}


def test_each_cc_by_piece_learned_from_is_credited_once_with_its_licence_link() -> None:
    text = attributions_markdown(MANIFEST)
    credits = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(credits) == 3  # ftp/A/one once for its two files, ftp/A/five, the valid piece
    assert "Reserved Waltz" not in text and "Old Air" not in text
    assert "1 in the public domain and 3 under Creative Commons" in text
    assert any("CC BY 3.0](https://creativecommons.org/licenses/by/3.0/)" in line for line in credits)
    assert any(line.endswith("; CC BY") for line in credits)  # no version: named, not linked
    assert all("T. Setter" in line and "piece-info.cgi?id=" in line for line in credits)


def test_splits_choose_the_pieces_and_an_empty_choice_is_an_error() -> None:
    assert "Reserved Waltz" in attributions_markdown(MANIFEST, ("test",))
    with pytest.raises(AmtError, match="no files in the splits"):
        attributions_markdown({"files": []})
    with pytest.raises(AmtError, match="not a Mutopia corpus manifest"):
        attributions_markdown({"pieces": 3})
    with pytest.raises(AmtError, match="names no piece"):
        attributions_markdown({"files": [{"split": "train", "licence_family": "cc-by"}]})


def test_command_line_writes_the_file_and_names_a_bad_manifest(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    out = tmp_path / "ATTRIBUTIONS.md"
    assert main([str(manifest), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Attributions")
    manifest.write_text("{not json")
    assert main([str(manifest), "--out", str(tmp_path / "other.md")]) == 2
    assert "cannot read the manifest" in capsys.readouterr().err
    assert not (tmp_path / "other.md").exists()
