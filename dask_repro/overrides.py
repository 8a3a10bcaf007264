"""``-S [file:]key=value``, as ``dvc exp run -S`` takes it: sets a params value in the user's
workspace before the run, keeping the file's comments and layout (ruamel.yaml, as DVC uses)."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedSeq


class OverrideError(ValueError):
    """An override that cannot be applied; the message names it."""


def parse(override: str) -> tuple[str, list[str], object]:
    """``[file:]key.path=value`` -> (file, key path, value read as YAML)."""
    target, equals, text = override.partition("=")
    if not equals or not target:
        raise OverrideError(f"-S {override}: expected [file:]key=value")
    file, colon, key = target.rpartition(":")
    try:
        value = YAML(typ="safe").load(text) if text.strip() else text
    except YAMLError as error:
        raise OverrideError(f"-S {override}: the value is not YAML ({error})") from None
    return (file if colon else "params.yaml"), key.split("."), value


def _shaped_like(old: object, new: object) -> object:
    """``new``, written in ``old``'s style: a list given as ``[42, 1]`` stays on one line."""
    if isinstance(new, list) and isinstance(old, CommentedSeq) and old.fa.flow_style():
        shaped = CommentedSeq(new)
        shaped.fa.set_flow_style()
        return shaped
    return new


def apply(project: Path, overrides: list[str]) -> None:
    """Sets each override's key, which must exist, in its file under ``project``."""
    yaml = YAML()  # Round trip: comments, order and quoting stay as they are.
    yaml.preserve_quotes = True
    documents: dict[str, object] = {}
    for override in overrides:
        file, keys, value = parse(override)
        if file not in documents:
            try:
                documents[file] = yaml.load(project / file)
            except (OSError, YAMLError) as error:
                raise OverrideError(f"-S {override}: cannot read {file} ({error})") from None
        section = documents[file]
        for depth, key in enumerate(keys):
            if not isinstance(section, dict) or key not in section:
                where = ".".join(keys[: depth + 1])
                raise OverrideError(f"-S {override}: {file} has no key {where}")
            if depth == len(keys) - 1:
                section[key] = _shaped_like(section[key], value)
            else:
                section = section[key]
    for file, document in documents.items():
        partial = project / f".{file}.partial"
        with open(partial, "w") as stream:
            yaml.dump(document, stream)
        partial.replace(project / file)
