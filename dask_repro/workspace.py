"""The workspace a task runs its stage in: a git worktree of the user's commit, with the user's
uncommitted edits laid over it, as DVC's own experiments copy a workspace.

- On the user's machine, in the user's project: a worktree of that project under
  ``.dvc/tmp/dask-repro/``, sharing its DVC cache (so its run-cache too).
- Elsewhere (another machine, or another checkout of the project): a worktree of the checkout
  the worker was started in, with that checkout's own DVC cache and configuration; data goes
  between machines through the DVC remote.

The snapshot of the edits is taken once, when the run starts: an edit made while it runs
reaches no task.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import socket
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from configobj import ConfigObj
from filelock import FileLock

# Inside DVC's own scratch folder, which git and DVC ignore.
WORKSPACES = Path(".dvc") / "tmp" / "dask-repro"


def git(arguments: list[str], cwd: Path) -> str:
    """The output of ``git <arguments>`` in ``cwd``; CalledProcessError when it fails."""
    return subprocess.run(
        ["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def machine_id() -> str:
    """Names this machine: its systemd machine id where there is one, else its host name."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(path).read_text().strip() or socket.gethostname()
        except OSError:
            continue
    return socket.gethostname()


@dataclass(frozen=True)
class Snapshot:
    """The user's workspace as a run starts: its commit, and every file that differs from it
    (edited, added and not ignored, deleted)."""

    project: str
    machine: str
    commit: str
    changed_files: bytes  # a tar archive of the edited and added files
    deleted_files: tuple[str, ...]
    # Stages whose entries the workspaces' dvc.lock leaves out (forget).
    forgotten: tuple[str, ...] = ()


def take_snapshot(project: Path) -> Snapshot:
    """The snapshot of ``project``'s workspace, now."""
    commit = git(["rev-parse", "HEAD"], project).strip()
    tracked = git(["diff", "--name-only", "-z", "HEAD"], project).split("\0")
    untracked = git(["ls-files", "-z", "--others", "--exclude-standard"], project).split("\0")
    archive, deleted = io.BytesIO(), []
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name in sorted(set(filter(None, tracked + untracked))):
            path = project / name
            if path.is_file() or path.is_symlink():
                tar.add(path, arcname=name, recursive=False)
            elif not path.exists():
                deleted.append(name)
    return Snapshot(str(project), machine_id(), commit, archive.getvalue(), tuple(deleted))


def checkout_of(folder: Path) -> Path:
    """The root of the git checkout that ``folder`` is in."""
    return Path(git(["rev-parse", "--show-toplevel"], folder).strip())


def works_in_users_project(snapshot: Snapshot, checkout: Path) -> bool:
    """Whether a worker whose checkout is ``checkout`` works in the user's project itself."""
    return snapshot.machine == machine_id() and checkout.resolve() == Path(snapshot.project)


@functools.cache
def _dvc_cache_dir(checkout: Path) -> str:
    return subprocess.run(
        ["dvc", "cache", "dir"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.strip()


def create(checkout: Path, snapshot: Snapshot, name: str) -> Path:
    """A new worktree of ``checkout`` at the snapshot's commit with its edits, named ``name``
    under ``checkout``'s workspaces folder, using ``checkout``'s DVC cache.

    Raises:
        RuntimeError: The commit is not in ``checkout`` (push it, so that the worker's
            checkout can fetch it).
    """
    root = checkout / WORKSPACES
    root.mkdir(parents=True, exist_ok=True)
    workspace = root / name
    # git keeps every worktree's metadata in the one repository: one `worktree add` at a time.
    with FileLock(root / "git.lock"):
        if subprocess.run(
            ["git", "cat-file", "-e", f"{snapshot.commit}^{{commit}}"], cwd=checkout,
            capture_output=True, check=False,
        ).returncode != 0:  # fmt: skip
            subprocess.run(["git", "fetch", "--quiet"], cwd=checkout, check=False)
        try:
            git(["worktree", "add", "--quiet", "--detach", str(workspace), snapshot.commit],
                checkout)  # fmt: skip
        except subprocess.CalledProcessError as error:
            raise RuntimeError(
                f"cannot check out commit {snapshot.commit[:12]} in {checkout} "
                f"({error.stderr.strip()}): push it, so that this worker's checkout can "
                "fetch it"
            ) from None
    with tarfile.open(fileobj=io.BytesIO(snapshot.changed_files)) as tar:
        tar.extractall(workspace, filter="tar")
    for name in snapshot.deleted_files:
        (workspace / name).unlink(missing_ok=True)
    forget(workspace, snapshot.forgotten)
    _share_cache(checkout, workspace)
    return workspace


def forget(folder: Path, stages: tuple[str, ...]) -> None:
    """Leaves ``stages`` out of the dvc.lock files of the project copy in ``folder``.

    The run's tasks run these stages again or restore them, and DVC restores a stage from its
    run-cache only when dvc.lock does not record the stage as it is: a stage recorded with its
    inputs unchanged, but its outputs in no cache (a fresh clone's committed dvc.lock), DVC
    runs again, here once more in every task downstream of it. Without their entries, DVC looks
    these stages up in the run-cache, where their tasks put them. This copy's dvc.lock is
    thrown away with it; the user's is recorded by DVC alone.
    """
    by_file: dict[Path, list[str]] = {}
    for stage in stages:
        pipeline, _, name = stage.rpartition(":")
        lock = folder / (Path(pipeline).parent if pipeline else Path()) / "dvc.lock"
        by_file.setdefault(lock, []).append(name)
    for lock, names in by_file.items():
        if not lock.exists():
            continue
        # libyaml's loader and dumper: a lock of many stages takes a fortieth of the time.
        document = yaml.load(lock.read_text(), Loader=yaml.CSafeLoader)
        for name in names:
            document.get("stages", {}).pop(name, None)
        lock.write_text(yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False))


def _share_cache(checkout: Path, workspace: Path) -> None:
    """The checkout's local DVC configuration (a remote's credentials, say), with its cache,
    linked rather than copied: a task's workspace is thrown away, and its outputs live on in
    the cache."""
    # DVC's configuration files are ConfigObj's format, read and written with DVC's own library.
    local = ConfigObj(str(checkout / ".dvc" / "config.local"))
    local.filename = str(workspace / ".dvc" / "config.local")
    cache = local.setdefault("cache", {})
    cache["dir"] = _dvc_cache_dir(checkout)
    cache["type"] = "hardlink,symlink,copy"
    # DVC keeps an index per project folder, by default in /var/tmp/dvc: one per task's
    # workspace would pile up there. Inside the workspace, it goes with it.
    local.setdefault("core", {})["site_cache_dir"] = str(workspace / ".dvc" / "tmp" / "site")
    local.write()


def remove(checkout: Path, workspace: Path) -> None:
    """Removes a task's worktree and git's record of it."""
    shutil.rmtree(workspace, ignore_errors=True)
    with FileLock(checkout / WORKSPACES / "git.lock"):
        subprocess.run(["git", "worktree", "prune"], cwd=checkout, check=False)


def remove_all(checkout: Path, run_id: str) -> None:
    """Removes what is left of run ``run_id``'s workspaces in ``checkout``."""
    shutil.rmtree(checkout / WORKSPACES / run_id, ignore_errors=True)
    root = checkout / WORKSPACES
    if root.exists():
        with FileLock(root / "git.lock"):
            subprocess.run(["git", "worktree", "prune"], cwd=checkout, check=False)


# Set in the environment of a task that runs away from the user's project (task.py): the
# machine and folder of that project.
ORIGIN_VARIABLE = "DASK_REPRO_ORIGIN"


def users_project_elsewhere() -> str | None:
    """Where the user's project is ("machine-id:folder"), when this process runs for a task in
    another checkout than that project; None otherwise."""
    return os.environ.get(ORIGIN_VARIABLE) or None
