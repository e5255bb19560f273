"""save_whole, the one torch file writer of checkpoints, training state and the feature cache: whole files only,
also when two trainings share a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from surveil.detection.checkpoints import save_whole


def test_two_writers_of_one_entry_both_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another training saves the same entry while this one is between writing and renaming."""
    entry = tmp_path / "cache" / "abc.pt"
    save = torch.save
    others = []

    def save_then_let_the_other_finish(obj, path) -> None:
        save(obj, path)
        if not others:
            others.append(path)
            save_whole({"writer": "other"}, entry)  # the other process, same entry, in between

    monkeypatch.setattr(torch, "save", save_then_let_the_other_finish)
    save_whole({"writer": "this"}, entry)  # a shared temporary name lost this file: FileNotFoundError
    assert torch.load(entry, weights_only=True) == {"writer": "this"}
    assert [p.name for p in entry.parent.iterdir()] == ["abc.pt"]  # no temporary file left behind


def test_a_failed_write_leaves_neither_entry_nor_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(obj, path) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_whole({"x": 1}, tmp_path / "abc.pt")
    assert list(tmp_path.iterdir()) == []
