"""What the project's code imports, read from its source (nothing is executed): for the tests
of dvc.yaml's dependencies and of the boundaries between the packages."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "imdb_sentiment", "fast_rnn")


def imported_names(source: Path) -> set[str]:
    """Every module name ``source`` imports, at the top or inside a function; for ``from a
    import b``, both ``a`` and ``a.b`` (``b`` may be a module or a name in ``a``)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str) -> Path | None:
    """The project file of module ``name``, or None if it is not one of the project's."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def project_imports(source: Path) -> set[Path]:
    """The project files ``source`` imports directly, with the ``__init__.py`` of every package
    on the way (importing ``a.b`` runs ``a/__init__.py`` first)."""
    files = set()
    for name in imported_names(source):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            found = module_file(".".join(parts[:depth]))
            if found is not None:
                files.add(found)
    files.discard(source)
    return files


def closure(source: Path, stop_at: frozenset[Path] = frozenset()) -> set[Path]:
    """``source`` and every project file it imports, directly or through others; files in
    ``stop_at`` are left out, and so is what only they import."""
    seen, todo = {source}, [source]
    while todo:
        for found in project_imports(todo.pop()) - seen - stop_at:
            seen.add(found)
            todo.append(found)
    return seen
