"""fast_rnn is a package of its own: it imports nothing of the project that uses it, so that
another project can take the folder as it is."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fast_rnn"
# What fast_rnn may import: the standard library and these (numpy comes with TensorFlow).
ALLOWED = {"filelock", "keras", "numpy", "tensorflow", "fast_rnn"}


def _imported_top_level_names(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{source.name}: relative import"
            names.add(node.module.split(".")[0])
    return names


def test_fast_rnn_imports_only_the_standard_library_keras_tensorflow_and_itself():
    import sys

    sources = sorted(PACKAGE.glob("*.py"))
    assert {source.name for source in sources} >= {"build.py", "layers.py", "ops.py"}
    for source in sources:
        foreign = _imported_top_level_names(source) - ALLOWED - set(sys.stdlib_module_names)
        assert not foreign, f"fast_rnn/{source.name} imports {sorted(foreign)}"


def test_nothing_in_fast_rnn_is_named_for_this_project():
    for source in [*PACKAGE.glob("*.py"), *PACKAGE.glob("*.cc")]:
        text = source.read_text().lower()
        for name in ("imdb", "stages", "imdb_sentiment", "params.yaml"):
            assert name not in text, f"fast_rnn/{source.name} mentions {name!r}"
