"""A task's workspace holds exactly the user's workspace: the commit, with every uncommitted
edit, addition and deletion; it shares the project's DVC cache, and goes without a trace."""

from pathlib import Path

import pytest

from dask_repro import workspace
from tests.dask_repro.conftest import run


def test_a_workspace_holds_the_users_uncommitted_edits(toy: Path):
    (toy / "seed.txt").write_text("edited, not committed\n")
    (toy / "new.txt").write_text("added, not committed\n")
    (toy / "make.py").unlink()
    snapshot = workspace.take_snapshot(toy)
    (toy / "seed.txt").write_text("edited after the snapshot\n")  # Reaches no task.
    made = workspace.create(toy, snapshot, "run-1/a")
    assert made == toy / workspace.WORKSPACES / "run-1" / "a"
    assert (made / "seed.txt").read_text() == "edited, not committed\n"
    assert (made / "new.txt").read_text() == "added, not committed\n"
    assert not (made / "make.py").exists()
    assert (made / "dvc.yaml").read_text() == (toy / "dvc.yaml").read_text()
    assert run(["dvc", "cache", "dir"], made).strip() == str(toy / ".dvc" / "cache")
    assert workspace.checkout_of(made) == made
    assert workspace.works_in_users_project(snapshot, toy)
    assert not workspace.works_in_users_project(snapshot, made)
    workspace.remove(toy, made)
    assert not made.exists()
    assert len(run(["git", "worktree", "list"], toy).splitlines()) == 1


def test_a_commit_the_workers_checkout_lacks_is_named(toy: Path, tmp_path: Path):
    snapshot = workspace.take_snapshot(toy)
    other = tmp_path / "other"
    run(["git", "init", "-q", str(other)], tmp_path)
    run(["git", "commit", "-q", "--allow-empty", "-m", "other"], other)
    with pytest.raises(RuntimeError, match=f"cannot check out commit {snapshot.commit[:12]}"):
        workspace.create(other, snapshot, "run-1/a")
