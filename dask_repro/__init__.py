"""``dvc repro`` with its stages side by side, on one machine or many: a runner on Dask.

DVC runs one stage at a time. This runner asks DVC (``dvc status --json``, ``dvc dag --dot``)
which stages must run, and submits each one whose upstream stages are done to a Dask cluster,
as ``dvc repro <stage>`` in a workspace of its own that holds exactly the user's workspace
(a git worktree of its commit, with its uncommitted edits). DVC's run-cache is where the
results meet: once every task is done, ``dvc repro`` in the user's workspace restores each of
them from it, runs what the run-cache cannot hold, and records everything in ``dvc.lock``. DVC
stays the one that decides what is up to date and what is recorded; without this runner,
``dvc repro`` gives the same results, one stage at a time.

    python -m dask_repro                     # a LocalCluster, one worker per core
    DASK_SCHEDULER_ADDRESS=tcp://host:8786 python -m dask_repro

A worker started in the user's project works there, in worktrees sharing its DVC cache. A worker
started in another checkout of the project (another machine) works in that checkout, with its
own DVC cache, and exchanges data through the project's default DVC remote: it fetches the
run-cache and pulls what its stage needs, and pushes the stage's outputs and run-cache entry.
See README.md. This package imports nothing of the project that uses it.
"""
