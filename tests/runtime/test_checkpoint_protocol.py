"""Checkpoints are committed manifest-last and restored only after verification."""

from __future__ import annotations

import builtins
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.runtime.conftest import due_steps
from tests.runtime.recording_server import RecordingServer
from trainyard.client import Client
from trainyard.runtime.checkpoint import Checkpointer
from trainyard.runtime.commits import LocalCommitLog, ServerCommitLog
from trainyard.runtime.distributed import Distributed
from trainyard.runtime.manifest import MANIFEST, STATE_FILE, write_checkpoint
from trainyard.runtime.stop import StopSignal
from trainyard.spec import CheckpointPolicy

EVERY_10 = CheckpointPolicy(every_steps=10, keep_last=10)


def standalone(root: Path, policy: CheckpointPolicy = EVERY_10) -> Checkpointer:
    return Checkpointer(root, policy, LocalCommitLog(root, policy), 1, Distributed(0, 0, 1), StopSignal())


def on_platform(root: Path, recorder: RecordingServer, stop: StopSignal | None = None) -> Checkpointer:
    connect = lambda: Client(recorder.url, timeout=2.0).attempt("job-1", 1)  # noqa: E731
    commits = ServerCommitLog(connect, "job-1", root)
    return Checkpointer(root, EVERY_10, commits, 1, Distributed(0, 0, 1), stop or StopSignal())


def state_at(step: int) -> dict:
    return {"model": {"w": torch.full((4, 4), float(step))}, "step": step}


def save_steps(ckpt: Checkpointer, *steps: int) -> None:
    for step in steps:
        assert ckpt.save(step, state_at(step), metrics={"val_acc": step / 100}, force=True)
    assert ckpt.wait(timeout=30)


def newest_state_file(root: Path) -> Path:
    return sorted(root.glob("a*-s*"))[-1] / STATE_FILE


class DiskOrder:
    """The opens for writing, fsyncs and renames this process makes under one root, in the order made.

    Mtimes cannot show an order (two writes in one clock tick share one); this sees each call.
    """

    def __init__(self, root: Path):
        self.root = root
        self._calls: list[tuple[str, Any]] = []

    def events(self) -> list[tuple[str, str]]:
        """(kind, file name): kind is open, fsync or rename (named by the new name); an fsync'd
        file or directory is named by what its inode is called now."""
        names = {p.stat().st_ino: p.name for p in [self.root, *self.root.rglob("*")]}
        return [(kind, names.get(what, "?") if kind == "fsync" else what) for kind, what in self._calls]

    def _ours(self, path: Any) -> bool:
        return isinstance(path, str | os.PathLike) and Path(path).is_relative_to(self.root)

    @classmethod
    def watching(cls, root: Path, monkeypatch: pytest.MonkeyPatch) -> DiskOrder:
        order = cls(root)
        real_open, real_fsync, real_replace, real_rename = io.open, os.fsync, os.replace, os.rename

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if order._ours(file) and set(mode) & set("wax+"):
                order._calls.append(("open", Path(file).name))
            return real_open(file, mode, *args, **kwargs)

        def fsync(fd: int) -> None:
            order._calls.append(("fsync", os.fstat(fd).st_ino))
            real_fsync(fd)

        def renaming(real: Any) -> Any:
            def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
                if order._ours(dst):
                    order._calls.append(("rename", Path(dst).name))
                real(src, dst, *args, **kwargs)
            return rename

        monkeypatch.setattr(io, "open", open_)  # what Path.open calls
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", renaming(real_replace))
        monkeypatch.setattr(os, "rename", renaming(real_rename))
        return order


@pytest.fixture
def disk_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DiskOrder:
    return DiskOrder.watching(tmp_path, monkeypatch)


def test_saved_checkpoint_is_files_then_manifest_with_sizes_and_checksums(tmp_path, disk_order):
    ckpt = standalone(tmp_path)
    save_steps(ckpt, 30)
    directory = tmp_path / "a001-s000000030"
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["format"] == 1 and manifest["step"] == 30 and manifest["attempt"] == 1
    assert manifest["metrics"] == {"val_acc": 0.3}
    [entry] = manifest["files"]
    assert entry["path"] == STATE_FILE
    assert entry["bytes"] == (directory / STATE_FILE).stat().st_size
    assert len(entry["sha256"]) == 64
    # The manifest appears (created or renamed into place) only once the state file is written,
    # fsynced and its directory entry fsynced; nothing touches the state file after.
    events = disk_order.events()
    appears = next(i for i, event in enumerate(events) if event in {("open", MANIFEST), ("rename", MANIFEST)})
    before, after = events[:appears], events[appears:]
    assert ("open", STATE_FILE) in before and ("fsync", STATE_FILE) in before
    last_state_event = max(i for i, (_, name) in enumerate(before) if name == STATE_FILE)
    assert ("fsync", directory.name) in before[last_state_event:]
    assert not [event for event in after if event[1] == STATE_FILE]


def test_save_follows_the_policy_unless_forced(tmp_path):
    ckpt = standalone(tmp_path)
    saved = [step for step in range(1, 36) if ckpt.save(step, state_at(step))]
    assert saved == due_steps(EVERY_10, range(1, 36))
    assert len(saved) == 3
    assert ckpt.save(36, state_at(36), force=True)
    assert ckpt.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"a001-s{step:09d}" for step in [*saved, 36]
    ]


def test_snapshot_is_unaffected_by_training_after_save_returns(tmp_path):
    ckpt = standalone(tmp_path)
    weights = torch.zeros(1000, 1000)
    ckpt.save(1, {"w": weights}, force=True)
    weights.add_(1.0)  # the optimizer goes on while the files are written
    assert ckpt.wait(timeout=30)
    step, state = standalone(tmp_path).load()
    assert step == 1 and float(state["w"].abs().max()) == 0.0


def test_load_restores_the_newest_checkpoint(tmp_path):
    save_steps(standalone(tmp_path), 10, 20)
    step, state = standalone(tmp_path).load()
    assert step == 20 and torch.equal(state["model"]["w"], torch.full((4, 4), 20.0))


def test_directory_without_manifest_was_never_committed_and_is_ignored(tmp_path):
    save_steps(standalone(tmp_path), 10, 20)
    (tmp_path / "a001-s000000020" / MANIFEST).unlink()  # as if the rank died before committing
    step, _ = standalone(tmp_path).load()
    assert step == 10


@pytest.mark.parametrize("damage", ["flipped_byte", "missing_file", "truncated"])
def test_damaged_newest_checkpoint_falls_back_to_previous_verified_one(tmp_path, damage):
    save_steps(standalone(tmp_path), 10, 20, 30)
    victim = newest_state_file(tmp_path)
    data = bytearray(victim.read_bytes())
    if damage == "flipped_byte":
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "truncated":
        victim.write_bytes(bytes(data[:-10]))
    else:
        victim.unlink()
    step, state = standalone(tmp_path).load()
    assert step == 20 and state["step"] == 20


def test_nothing_restored_when_no_checkpoint_verifies(tmp_path):
    save_steps(standalone(tmp_path), 10)
    newest_state_file(tmp_path).write_bytes(b"garbage")
    assert standalone(tmp_path).load() is None
    assert standalone(tmp_path / "empty").load() is None


def test_standalone_retention_keeps_the_last_and_the_best(tmp_path):
    policy = CheckpointPolicy(every_steps=1, keep_last=2, keep_best={"metric": "acc", "mode": "max"})
    ckpt = standalone(tmp_path, policy)
    for step, acc in [(1, 0.5), (2, 0.9), (3, 0.6), (4, 0.7), (5, 0.8)]:
        ckpt.save(step, state_at(step), metrics={"acc": acc})
        assert ckpt.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a001-s000000002", "a001-s000000004", "a001-s000000005"
    ]


def test_commit_names_the_step_and_its_manifest_and_no_location(tmp_path, recorder):
    save_steps(on_platform(tmp_path, recorder), 10)
    [commit] = recorder.commits
    assert commit["step"] == 10 and "uri" not in commit  # the server derives where step 10 lives
    assert (tmp_path / "a001-s000000010" / MANIFEST).is_file()
    assert commit["manifest"]["files"][0]["path"] == STATE_FILE
    assert commit["bytes"] > commit["manifest"]["files"][0]["bytes"]
    assert commit["metrics"] == {"val_acc": 0.1}


def test_commit_is_retried_until_the_server_returns(tmp_path, recorder):
    recorder.stop()
    ckpt = on_platform(tmp_path, recorder)
    ckpt.save(10, state_at(10), force=True)
    assert not ckpt.wait(timeout=1.0)
    recorder.start()
    assert ckpt.wait(timeout=20)
    assert [c["step"] for c in recorder.commits] == [10]


def test_stale_attempt_commit_deletes_the_checkpoint_and_requests_stop(tmp_path, recorder):
    recorder.stale = True
    stop = StopSignal()
    save_steps(on_platform(tmp_path, recorder, stop), 10)
    assert stop.is_set() and "no longer current" in (stop.reason or "")
    assert not (tmp_path / "a001-s000000010").exists()
    assert recorder.commits == []


def test_platform_restore_reports_the_corrupt_checkpoint_and_falls_back(tmp_path, recorder):
    save_steps(on_platform(tmp_path, recorder), 300, 400)
    victim = tmp_path / "a001-s000000400" / STATE_FILE
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x01
    victim.write_bytes(bytes(data))
    step, _ = on_platform(tmp_path, recorder).load()
    assert step == 300
    assert recorder.corrupt == [{"step": 400, "reason": "state.pt: sha256 mismatch"}]
    assert recorder.events == [{
        "kind": "checkpoint_fallback",
        "reason": "checkpoint at step 400 failed verification (state.pt: sha256 mismatch); "
        "restoring step 300",
    }]


def test_second_save_waits_for_the_first_so_each_keeps_its_own_values(tmp_path):
    ckpt = standalone(tmp_path)
    weights = torch.ones(4_000_000)
    ckpt.save(1, {"w": weights}, force=True)
    weights.fill_(2.0)
    ckpt.save(2, {"w": weights}, force=True)  # reuses the snapshot buffers of save 1
    assert ckpt.wait(timeout=30)
    for step, value in [(1, 1.0), (2, 2.0)]:
        state = torch.load(tmp_path / f"a001-s{step:09d}" / STATE_FILE, weights_only=True)
        assert torch.all(state["w"] == value)


class Opaque:
    """Not a tensor or a plain container: only full pickle can rebuild it."""

    def __init__(self, value: int) -> None:
        self.value = value


class RunsCodeWhenUnpickled:
    """What a hostile checkpoint holds: unpickling it creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_restore_refuses_pickled_checkpoint_without_opt_in(tmp_path):
    root = tmp_path / "ckpt"
    marker = tmp_path / "code-ran"
    hostile = {"w": torch.ones(2), "evil": RunsCodeWhenUnpickled(marker)}
    write_checkpoint(root / "a001-s000000010", hostile, 10, 1, {})  # with a manifest that checks out
    assert not marker.exists()
    with pytest.raises(RuntimeError, match=r"step 10 fails verification.*trusted_pickle"):
        standalone(root).load()
    assert not marker.exists()


def test_restore_with_trusted_pickle_loads_objects_beyond_tensors(tmp_path):
    trusting = CheckpointPolicy(every_steps=10, keep_last=10, trusted_pickle=True)
    save_steps(standalone(tmp_path, trusting), 10)  # plain tensors: no pickle needed
    ckpt = standalone(tmp_path, trusting)
    assert ckpt.save(20, {"w": torch.ones(2), "extra": Opaque(7)}, force=True)
    assert ckpt.wait(timeout=30)
    step, state = standalone(tmp_path, trusting).load()
    assert step == 20 and state["extra"].value == 7


def test_platform_restore_tells_the_server_why_a_pickled_checkpoint_was_refused(tmp_path, recorder):
    ckpt = on_platform(tmp_path, recorder)
    assert ckpt.save(10, {"extra": Opaque(1)}, force=True)
    assert ckpt.wait(timeout=30)
    with pytest.raises(RuntimeError, match="trusted_pickle"):
        on_platform(tmp_path, recorder).load()
    assert [e["kind"] for e in recorder.events] == ["checkpoint_refused"]
    reason = recorder.events[0]["reason"]
    assert "step 10" in reason and f"{__name__}.Opaque" in reason  # names what needed pickle
    assert recorder.corrupt == []


def test_platform_restore_reads_only_inside_its_own_checkpoint_root(tmp_path, recorder):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    save_steps(on_platform(root, recorder), 10)
    manifest_elsewhere, _ = write_checkpoint(elsewhere / "x", state_at(99), 20, 1, {})
    recorder.listed_extra.append({"step": 20, "attempt": 1, "uri": str(elsewhere / "x"),
                                  "manifest": manifest_elsewhere, "metrics": {}})
    step, state = on_platform(root, recorder).load()
    assert step == 10 and state["step"] == 10  # step 20 is not where the server names it: missing
    assert recorder.corrupt == [{"step": 20, "reason": "state.pt: missing"}]


def test_commit_refused_by_the_server_is_logged_and_reported_as_an_event(tmp_path, recorder, caplog):
    recorder.commit_refusal = (422, {"errors": [{"field": "step", "message": "no manifest"}]})
    ckpt = on_platform(tmp_path, recorder)
    save_steps(ckpt, 10)
    assert "no manifest" in (ckpt.last_commit_error or "")
    assert any("refused" in r.message and r.levelname == "ERROR" for r in caplog.records)
    [event] = recorder.events
    assert event["kind"] == "checkpoint_commit_failed" and "step 10" in event["reason"]


def test_commit_retry_on_server_errors_gives_up_after_its_bound_visibly(tmp_path, recorder, caplog):
    recorder.commit_refusal = (500, {"detail": "Internal Server Error"})
    ckpt = on_platform(tmp_path, recorder)
    ckpt.commit_retry_s = 1.5
    assert ckpt.save(10, state_at(10), force=True)
    assert ckpt.wait(timeout=20), "the committer kept retrying past its bound"
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "retrying" in r.message]
    assert warnings and "Internal Server Error" in (ckpt.last_commit_error or "")
    [event] = recorder.events
    assert event["kind"] == "checkpoint_commit_failed"
    assert "gave up" in event["reason"] and "step 10" in event["reason"]
