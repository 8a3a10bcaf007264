"""Runs that other processes left open or unrecorded, marked FAILED by the next stage: no run
stays RUNNING after its process is gone."""

from __future__ import annotations

import logging
import os
import socket

import mlflow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from imdb_sentiment import paths
from imdb_sentiment.tracking.provenance import recorded_run_id

logger = logging.getLogger(__name__)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """Marks FAILED the runs of this host left RUNNING by a process that is gone (killed by
    SIGKILL or the OOM killer, or unable to reach its server when it ended).

    Returns:
        The ids of the runs it ended.
    """
    client = mlflow.MlflowClient()
    running = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.host = '{socket.gethostname()}'",
    )
    orphans = [run for run in running if not _is_alive(int(run.data.tags.get("pid", "0")))]
    for orphan in orphans:
        client.set_tag(orphan.info.run_id, "ended_by", "cleanup: its process was gone")
        client.set_terminated(orphan.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        logger.warning("Marked MLflow run %s FAILED: its process had died", orphan.info.run_id)
    return [orphan.info.run_id for orphan in orphans]


def end_unrecorded_runs(experiment_id: str) -> list[str]:
    """Marks FAILED the earlier runs of this DVC stage that ended FINISHED but whose outputs DVC
    never recorded (it failed after the stage's process, say, caching them on a full disk): any
    finished run of the stage in this project newer than the one dvc.lock records. Only under
    ``dvc repro`` of the workspace, for a stage whose outputs name their run (training).

    Returns:
        The ids of the runs it marked.
    """
    stage = os.environ.get("DVC_STAGE")
    if not stage or os.environ.get("DVC_EXP_NAME"):
        return []
    recorded = recorded_run_id(stage)
    if recorded is None:
        return []
    client = mlflow.MlflowClient()
    try:
        since = client.get_run(recorded).info.start_time
    except MlflowException:
        return []
    finished = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and tags.dvc_stage = '{stage}' "
        f"and attributes.start_time > {since}",
    )
    project = str(paths.this_project().root)
    unrecorded = [
        run
        for run in finished
        if run.info.run_id != recorded
        and run.data.tags.get("project") == project
        and "dvc_exp_name" not in run.data.tags
    ]
    for run in unrecorded:
        client.set_tag(
            run.info.run_id,
            "ended_by",
            f"cleanup: DVC did not record its outputs (found by the next run of {stage})",
        )
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        logger.warning(
            "Marked MLflow run %s FAILED: its stage ran, but DVC did not record its outputs",
            run.info.run_id,
        )
    return [run.info.run_id for run in unrecorded]
