"""Atomic writes: the target is the old file or the new one, never half; new files get normal permissions."""

from __future__ import annotations

import os
import stat

import pytest

from repro.rundir import atomic_write, atomic_write_text


def test_new_file_has_the_umask_permissions_not_mkstemps_0600(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    atomic_write_text(tmp_path / "record.json", "{}")
    mode = stat.S_IMODE((tmp_path / "record.json").stat().st_mode)
    assert mode == 0o666 & ~mask  # readable by group and others unless the umask forbids it


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.md"
    atomic_write_text(target, "old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]
