"""``python -m dask_repro``: runs the DVC pipeline of the current folder on a Dask cluster."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path

from dask_repro import overrides, runner
from dask_repro.plan import DvcError


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dask_repro",
        description="dvc repro, with its stages side by side on a Dask cluster.",
    )
    parser.add_argument(
        "--scheduler",
        help="a Dask scheduler's address (default: Dask's configuration, "
        "DASK_SCHEDULER_ADDRESS; else a LocalCluster in this process)",
    )
    parser.add_argument(
        "--workers", type=int, help="the LocalCluster's workers (default: one per core)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this variable's value here on to every stage, wherever it runs",
    )
    parser.add_argument(
        "-S",
        "--set-param",
        action="append",
        default=[],
        metavar="[FILE:]KEY=VALUE",
        help="set a params value in the workspace first, as dvc exp run -S does",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    project = Path.cwd()
    environment = {name: os.environ[name] for name in arguments.env if name in os.environ}
    try:
        if arguments.set_param:
            overrides.apply(project, arguments.set_param)
        return runner.run(
            project,
            functools.partial(runner.connect, arguments.scheduler, arguments.workers),
            environment,
        )
    except (runner.RunnerError, overrides.OverrideError, DvcError) as error:
        logging.getLogger("dask_repro").error("%s", error)
        return 1
    except KeyboardInterrupt:
        logging.getLogger("dask_repro").error("Interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
