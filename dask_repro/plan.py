"""Which stages a run must execute, and in what order: asked of DVC through its command line.

``dvc status --json`` says which stages changed, ``dvc dag --dot`` how they depend on each
other, and ``dvc.yaml`` (its documented format) which of them DVC's run-cache can hold. A stage
that changed must run, and so must every stage after it. Each of those whose outputs the
run-cache can hold becomes a task; the others (a stage with a plain ``cache: false`` output, or
``always_changed``, and every stage after one) are left to the final ``dvc repro`` in the
user's workspace, which also restores every task's outputs from the run-cache. DVC decides,
in each task and in that final run, what is up to date and what is recorded.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_EDGE = re.compile(r'^\s*"(?P<source>[^"]+)"\s*->\s*"(?P<target>[^"]+)"')
_NODE = re.compile(r'^\s*"(?P<name>[^"]+)";')
# A stage whose only changes are outputs or dependencies missing from the workspace, but kept in
# DVC's cache, needs no task: the final `dvc repro` checks them out.
_ONLY_MISSING = {"deleted"}
# Missing from the workspace, and from the cache too.
_LOST = {"deleted", "not in cache"}


class DvcError(RuntimeError):
    """A DVC command failed; the message is DVC's own."""


def dvc(arguments: list[str], project: Path, check: bool = True) -> str:
    """The standard output of ``dvc <arguments>`` run in ``project`` (empty if it fails and
    not ``check``)."""
    result = subprocess.run(
        ["dvc", *arguments], cwd=project, capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and not check:
        return ""
    if result.returncode != 0:
        raise DvcError((result.stderr or result.stdout).strip() or f"dvc {arguments[0]} failed")
    return result.stdout


@dataclass(frozen=True)
class Graph:
    """The pipeline's stages in DVC's order, and each stage's direct upstream stages."""

    stages: tuple[str, ...]
    upstream: dict[str, frozenset[str]]

    def downstream_closure(self, starts: Iterable[str]) -> set[str]:
        """``starts`` and every stage after any of them."""
        after: dict[str, set[str]] = {stage: set() for stage in self.stages}
        for stage, befores in self.upstream.items():
            for before in befores:
                after[before].add(stage)
        found, frontier = set(starts), list(starts)
        while frontier:
            for later in after[frontier.pop()]:
                if later not in found:
                    found.add(later)
                    frontier.append(later)
        return found


def parse_dot(text: str) -> Graph:
    """The graph of ``dvc dag --dot``'s output."""
    stages: list[str] = []
    upstream: dict[str, set[str]] = {}
    for line in text.splitlines():
        if edge := _EDGE.match(line):
            upstream.setdefault(edge["target"], set()).add(edge["source"])
        elif node := _NODE.match(line):
            stages.append(node["name"])
    return Graph(tuple(stages), {stage: frozenset(upstream.get(stage, ())) for stage in stages})


def needs_running(changes: list) -> bool:
    """Whether a stage's entry of ``dvc status --json`` asks for more than a checkout."""
    for change in changes:
        if not isinstance(change, dict):
            return True  # "always changed", "changed checksum" and the like.
        for kind, details in change.items():
            # A changed param comes as a mapping of its own under "changed deps".
            missing_only = (
                kind in ("changed outs", "changed deps")
                and isinstance(details, dict)
                and all(
                    isinstance(value, str) and value in _ONLY_MISSING for value in details.values()
                )
            )
            if not missing_only:
                return True
    return False


def records_lost_outputs(changes: list) -> bool:
    """Whether a stage's entry of ``dvc status --json`` says that dvc.lock records the stage as
    it is (its command, dependencies and params), with outputs that are in no cache: a fresh
    clone's committed dvc.lock, say. DVC then runs the stage again in the user's workspace,
    whatever its run-cache holds: a task's run of it must be recorded another way."""
    lost = False
    for change in changes:
        if not isinstance(change, dict):
            return False
        for kind, details in change.items():
            if kind not in ("changed outs", "changed deps") or not isinstance(details, dict):
                return False
            if not all(isinstance(value, str) and value in _LOST for value in details.values()):
                return False
            lost |= kind == "changed outs" and "not in cache" in details.values()
    return lost


def _stage_definitions(project: Path, stage: str) -> dict | None:
    """The definition of ``stage`` (``name``, ``name@item`` or ``path/dvc.yaml:name``) in its
    dvc.yaml, or None for a ``.dvc`` file or a definition that cannot be read."""
    file, _, name = stage.rpartition(":")
    if stage.endswith(".dvc"):
        return None
    try:
        stages = yaml.safe_load((project / (file or "dvc.yaml")).read_text())["stages"]
        return stages[name.partition("@")[0]]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def _entries(items: list) -> Iterable[tuple[str, dict]]:
    for item in items or []:
        if isinstance(item, dict):
            for path, options in item.items():
                yield str(path), options or {}
        else:
            yield str(item), {}


def restorable(definition: dict | None) -> bool:
    """Whether DVC's run-cache can hold a run of the stage defined by ``definition`` (DVC's
    rule): a command, dependencies and outputs; not ``always_changed``; every output cached,
    a metric or a plot (those DVC keeps in the run-cache even with ``cache: false``), and none
    persistent."""
    if not definition:
        return False
    body = definition.get("do", definition)
    if body.get("always_changed") or not (body.get("cmd") and body.get("deps")):
        return False
    outputs = [
        (options, plain)
        for key, plain in (("outs", True), ("metrics", False), ("plots", False))
        for _, options in _entries(body.get(key, []))
    ]
    if not outputs:
        return False
    return not any(
        options.get("persist") or (plain and options.get("cache") is False)
        for options, plain in outputs
    )


@dataclass(frozen=True)
class Plan:
    """The tasks, each named after the last of its stages and with the tasks it waits for, in
    DVC's order; each task's stages (a chain, run by one ``dvc repro <last stage>``); the
    stages left to the final ``dvc repro``; the stages whose outputs ``dvc commit`` records
    (see :func:`records_lost_outputs`)."""

    tasks: dict[str, tuple[str, ...]]
    left: tuple[str, ...]
    committed: frozenset[str] = frozenset()
    stages: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def stages_of(self, task: str) -> tuple[str, ...]:
        return self.stages.get(task, (task,))


def chains(tasks: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The tasks' stages grouped into chains: a stage joins the chain of the one stage before it
    when that stage has no other stage after it and everything else it waits for comes before
    that stage (a training and its evaluation, say). One ``dvc repro`` runs a chain in one
    workspace: each task costs a worktree, DVC's start and the restoring of what it reads
    (about 4 s here), so fewer tasks finish sooner. By its last stage."""
    after: dict[str, list[str]] = {stage: [] for stage in tasks}
    for stage, befores in tasks.items():
        for before in befores:
            after[before].append(stage)

    def ancestors(stage: str) -> set[str]:
        found, frontier = set(), list(tasks[stage])
        while frontier:
            if (before := frontier.pop()) not in found:
                found.add(before)
                frontier.extend(tasks[before])
        return found

    chain_of: dict[str, list[str]] = {}
    for stage, befores in tasks.items():
        joined = next(
            (
                before
                for before in befores
                if after[before] == [stage]
                and chain_of[before][-1] == before
                and set(befores) <= {before} | ancestors(before)
            ),
            None,
        )
        chain = chain_of[joined] if joined else []
        chain.append(stage)
        chain_of[stage] = chain
    return {chain[-1]: tuple(chain) for chain in {id(c): c for c in chain_of.values()}.values()}


def make_plan(project: Path) -> Plan:
    """What a run of ``project`` must execute (see the module's docstring).

    Raises:
        DvcError: DVC could not read the pipeline; the message is DVC's.
    """
    with ThreadPoolExecutor(2) as both:  # Each asks DVC for about a second.
        asked_status = both.submit(dvc, ["status", "--json"], project)
        asked_dag = both.submit(dvc, ["dag", "--dot"], project)
        status = json.loads(asked_status.result() or "{}")
        graph = parse_dot(asked_dag.result())
    changed = {stage for stage, changes in status.items() if needs_running(changes)}
    must_run = graph.downstream_closure(changed & set(graph.stages))
    not_restorable = {
        stage for stage in graph.stages if not restorable(_stage_definitions(project, stage))
    }
    left = graph.downstream_closure(not_restorable) & must_run
    tasks = {
        stage: tuple(sorted(graph.upstream[stage] & (must_run - left)))
        for stage in graph.stages
        if stage in must_run - left
    }
    committed = {stage for stage in tasks if records_lost_outputs(status.get(stage, []))}
    grouped = chains(tasks)
    last_of = {stage: last for last, members in grouped.items() for stage in members}
    chained = {}
    for last, members in grouped.items():
        befores = {last_of[before] for stage in members for before in tasks[stage]}
        chained[last] = tuple(sorted(befores - {last}))
    in_order = {stage: chained[stage] for stage in tasks if stage in chained}
    left_in_order = tuple(stage for stage in graph.stages if stage in left)
    return Plan(in_order, left_in_order, frozenset(committed), grouped)
