"""What must run, as DVC says it: changed stages and everything after them; tasks for what the
run-cache can hold, the rest left to the final `dvc repro`."""

from pathlib import Path

from dask_repro import plan
from tests.dask_repro.conftest import run

DOT = """strict digraph {
"a";
"b@1";
"b@2";
"c";
"a" -> "b@1";
"a" -> "b@2";
"b@1" -> "c";
"b@2" -> "c";
}
"""


def test_the_graph_is_read_from_dvc_dag():
    graph = plan.parse_dot(DOT)
    assert graph.stages == ("a", "b@1", "b@2", "c")
    assert graph.upstream["c"] == {"b@1", "b@2"}
    assert graph.upstream["a"] == frozenset()
    assert graph.downstream_closure(["b@1"]) == {"b@1", "c"}
    assert graph.downstream_closure(["a"]) == {"a", "b@1", "b@2", "c"}


def test_a_stage_whose_outputs_are_only_missing_needs_a_checkout_not_a_run():
    assert not plan.needs_running([{"changed outs": {"a.txt": "deleted"}}])
    assert not plan.needs_running([{"changed deps": {"a.txt": "deleted"}}])
    assert plan.needs_running([{"changed outs": {"a.txt": "not in cache"}}])
    assert plan.needs_running([{"changed deps": {"seed.txt": "modified"}}])
    assert plan.needs_running([{"changed deps": {"params.yaml": {"x": "modified"}}}])
    assert plan.needs_running(["always changed"])


def test_what_the_run_cache_can_hold():
    # DVC's rule: command, deps and outputs; every output cached, or a metric or plot.
    assert plan.restorable({"cmd": "x", "deps": ["a"], "outs": ["b"]})
    assert plan.restorable({"cmd": "x", "deps": ["a"], "metrics": [{"m.json": {"cache": False}}]})
    assert plan.restorable({"matrix": {"n": [1]}, "cmd": "x", "deps": ["a"], "outs": ["b"]})
    assert plan.restorable({"foreach": [1], "do": {"cmd": "x", "deps": ["a"], "outs": ["b"]}})
    assert not plan.restorable({"cmd": "x", "deps": ["a"], "outs": [{"b": {"cache": False}}]})
    assert not plan.restorable({"cmd": "x", "deps": ["a"], "outs": [{"b": {"persist": True}}]})
    assert not plan.restorable({"cmd": "x", "outs": ["b"]})
    assert not plan.restorable({"cmd": "x", "deps": ["a"]})
    assert not plan.restorable({"cmd": "x", "deps": ["a"], "outs": ["b"], "always_changed": True})
    assert not plan.restorable(None)


def test_a_new_pipeline_runs_every_stage_the_run_cache_can_hold(toy: Path):
    made = plan.make_plan(toy)
    assert made.tasks == {"a": (), "b@1": ("a",), "b@2": ("a",), "b@3": ("a",)}
    assert made.left == ("c",)


def test_a_change_runs_what_it_touches(toy: Path):
    run(["dvc", "repro"], toy)
    assert plan.make_plan(toy) == plan.Plan({}, ())
    # b's outputs deleted, still in the cache: a checkout, which the final dvc repro does.
    (toy / "b2.txt").unlink()
    assert plan.make_plan(toy).tasks == {}
    (toy / "seed.txt").write_text("another seed\n")
    made = plan.make_plan(toy)
    assert list(made.tasks) == ["a", "b@1", "b@2", "b@3"]
    assert made.left == ("c",)


def test_a_stage_joins_the_chain_of_the_one_stage_before_it_that_nothing_else_waits_for():
    tasks = {
        "download": (),
        "prepare": ("download",),
        "train@a": ("prepare",),
        "train@b": ("prepare",),
        "evaluate@a": ("prepare", "train@a"),
        "evaluate@b": ("prepare", "train@b"),
        "compare": ("evaluate@a", "evaluate@b"),
    }
    assert plan.chains(tasks) == {
        "prepare": ("download", "prepare"),
        "evaluate@a": ("train@a", "evaluate@a"),
        "evaluate@b": ("train@b", "evaluate@b"),
        "compare": ("compare",),  # Two stages before it: no chain.
    }
