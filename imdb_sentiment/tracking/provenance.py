"""Where a run's code and data came from: the git commit, whether the code differed from it,
the DVC stage and experiment, and for each dataset the DVC hash and git revision that fetch it
again."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml

from imdb_sentiment import paths


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=paths.this_project().root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def source_tags() -> dict[str, str]:
    """Where a run's code came from: the git commit, whether the code or params differed from
    it, the DVC stage, and the DVC experiment (under ``dvc exp run`` the commit is only the
    experiment's baseline)."""
    tags = {}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
        # dvc.lock and reports/ change with every run; they do not make the code differ.
        changes = _git(
            "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!reports"
        )
        tags["git_dirty"] = str(bool(changes)).lower()
    for variable in ("DVC_STAGE", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        if os.environ.get(variable):
            tags[variable.lower()] = os.environ[variable]
    return tags


def _locked_hashes(lock_text: str | None, relative_path: str) -> set[str]:
    """The md5s a dvc.lock records for ``relative_path``, as any stage's output or dependency."""
    if not lock_text:
        return set()
    try:
        stages = (yaml.safe_load(lock_text) or {}).get("stages", {})
    except yaml.YAMLError:
        return set()
    return {
        entry.get("md5")
        for stage in stages.values()
        for entry in (*stage.get("outs", []), *stage.get("deps", []))
        if entry.get("path") == relative_path
    }


def data_tags(path: Path) -> dict[str, str]:
    """Where a data file came from, as tags of the MLflow dataset that records it: its path in
    the project and its DVC hash (the md5 of its bytes, DVC 3's hash of a file), the git commit
    the run started from, and whether that commit's dvc.lock records this hash. When it does,
    ``dvc get <repository> <path> --rev <commit>`` fetches these exact bytes; when not (the data
    was prepared by this very ``dvc repro``), the commit that records the run's dvc.lock does,
    and the hash finds the file in DVC's cache meanwhile (docs/reproducibility.md)."""
    root = paths.this_project().root
    resolved = path.resolve()
    relative = (
        resolved.relative_to(root) if resolved.is_relative_to(root) else resolved
    ).as_posix()
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    tags = {"dvc_path": relative, "dvc_md5": digest.hexdigest()}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = commit
        recorded = _locked_hashes(_git("show", f"{commit}:dvc.lock"), relative)
        tags["dvc_lock_at_commit"] = str(tags["dvc_md5"] in recorded).lower()
    return tags


def recorded_run_id(stage: str) -> str | None:
    """The MLflow run whose outputs dvc.lock records for ``stage``: the ``run_id`` in the
    stage's ``mlflow_run.json`` as DVC cached it. None when the stage has no such output, is
    not recorded, or its file is not in the project's DVC cache."""
    root = paths.this_project().root
    try:
        outs = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]["outs"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    for out in outs:
        md5 = out.get("md5") or ""
        if str(out.get("path", "")).endswith("mlflow_run.json") and len(md5) == 32:
            cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
            try:
                return json.loads(cached.read_text())["run_id"]
            except (OSError, ValueError, KeyError):
                return None
    return None
