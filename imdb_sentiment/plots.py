"""Figures of the reports: functions from tables to matplotlib figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # Stages run without a display.

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from imdb_sentiment.files import atomic_path


def learning_curves(histories: dict[str, pd.DataFrame]) -> Figure:
    """Training and validation loss and accuracy per epoch, one colour per model."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, (name, history) in enumerate(histories.items()):
        colour = f"C{index}"
        for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            axes.plot(
                history["epoch"],
                history[metric],
                "--",
                color=colour,
                alpha=0.6,
                label=f"{name} train",
            )
            axes.plot(
                history["epoch"],
                history[f"val_{metric}"],
                "-o",
                color=colour,
                markersize=3,
                label=f"{name} validation",
            )
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
    accuracy_axes.legend(fontsize="small")
    figure.suptitle("Learning curves (solid: validation split)")
    figure.tight_layout()
    return figure


def roc_curves(curves: dict[str, pd.DataFrame], auc: dict[str, float]) -> Figure:
    """ROC curves on the test set, one per model, with their AUC."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    for name, curve in curves.items():
        axes.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {auc[name]:.3f})")
    axes.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC on the test set")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def accuracy_intervals(table: pd.DataFrame, runs: pd.DataFrame) -> Figure:
    """Per model: test accuracy (mean over seeds) with its 95% interval where the seeds give
    one (its legend says what it is about), each seed's test accuracy, and the mean validation
    accuracy."""
    figure, axes = plt.subplots(figsize=(1.6 * len(table) + 2.5, 4))
    positions = np.arange(len(table))
    errors = [
        (table["test_accuracy"] - table["test_accuracy_low"]).fillna(0),
        (table["test_accuracy_high"] - table["test_accuracy"]).fillna(0),
    ]
    about = table["interval_about"].iloc[0]
    has_interval = bool(table["test_accuracy_low"].notna().any())
    axes.errorbar(
        positions, table["test_accuracy"], yerr=errors if has_interval else None, fmt="o",
        color="C0", capsize=6,
        label=f"test, mean; 95% interval of {about}" if has_interval else "test, mean",
    )  # fmt: skip
    for position, model in zip(positions, table["model"], strict=True):
        seeds = runs.loc[runs["model"] == model, "test_accuracy"]
        axes.scatter(
            np.full(len(seeds), position + 0.15), seeds, s=12, color="C0", alpha=0.5,
            label="test, one seed" if position == 0 else None,
        )  # fmt: skip
    axes.scatter(
        positions - 0.15, table["val_accuracy"], marker="s", color="C7",
        label="validation, mean",
    )  # fmt: skip
    axes.set_xticks(positions, table["model"])
    axes.set_xlim(-0.6, len(table) - 0.4)
    axes.set_ylabel("accuracy")
    axes.set_title("Accuracy by model")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def sweep(table: pd.DataFrame, key: str) -> Figure:
    """Validation and test accuracy, and training seconds per epoch, against a swept param, one
    line per model."""
    figure, (accuracy_axes, time_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, (model, points) in enumerate(table.groupby("model", sort=False)):
        points = points.sort_values(key)
        accuracy_axes.plot(points[key], points["test_accuracy"], "-o", color=f"C{index}",
                           label=f"{model} test")  # fmt: skip
        accuracy_axes.plot(points[key], points["val_accuracy"], ":s", color=f"C{index}",
                           alpha=0.6, markersize=4, label=f"{model} validation")  # fmt: skip
        time_axes.plot(points[key], points["seconds_per_epoch"], "-o", color=f"C{index}",
                       label=model)  # fmt: skip
    for axes, label in ((accuracy_axes, "accuracy"), (time_axes, "training seconds per epoch")):
        axes.set_xlabel(key)
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    accuracy_axes.set_title(f"Accuracy against {key}")
    time_axes.set_title(f"Training time against {key}")
    figure.tight_layout()
    return figure


def confusion_matrix(matrix: list[list[int]], title: str) -> Figure:
    """A 2x2 confusion matrix with counts; rows are actual labels, columns predicted."""
    figure, axes = plt.subplots(figsize=(4, 3.6))
    axes.imshow(matrix, cmap="Blues")
    for row in range(2):
        for column in range(2):
            axes.text(column, row, f"{matrix[row][column]:,}", ha="center", va="center")
    axes.set_xticks([0, 1], ["negative", "positive"])
    axes.set_yticks([0, 1], ["negative", "positive"])
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Writes ``figure`` as a PNG, atomically, and frees it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


# The false positive rates at which the overlaid ROC curves are kept (101 points each, not the
# thousands of a curve's own).
ROC_POINTS = np.linspace(0.0, 1.0, 101)


def overlay_tables(
    histories: dict[tuple[str, int], pd.DataFrame],
    rocs: dict[tuple[str, int], pd.DataFrame],
    runs: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """The data of dvc.yaml's overlaid plots, every network in one table each, by ``model``,
    ``seed`` and ``network``: validation accuracy per epoch (``learning_curves``), the test ROC
    curve (``roc``) and each network's test accuracy by its seed's place (``test_accuracy``:
    1 for a model's first seed). `dvc plots show` draws them; `dvc plots diff` compares
    revisions."""

    def stacked(tables: dict[tuple[str, int], pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(
            [
                table.assign(model=model, seed=seed, network=f"{model}-{seed}")
                for (model, seed), table in tables.items()
            ],
            ignore_index=True,
        )

    curves = {
        key: pd.DataFrame({"fpr": ROC_POINTS, "tpr": np.interp(ROC_POINTS, roc["fpr"], roc["tpr"])})
        for key, roc in rocs.items()
    }
    order = runs.groupby("model", sort=False).cumcount() + 1
    return {
        "learning_curves": stacked(
            {key: history[["epoch", "val_accuracy"]] for key, history in histories.items()}
        ),
        "roc": stacked(curves),
        "test_accuracy": pd.DataFrame(
            {
                "model": runs["model"],
                "seed": runs["seed"],
                "network": runs["model"] + "-" + runs["seed"].astype(str),
                "seed_number": order,
                "test_accuracy": runs["test_accuracy"],
            }
        ),
    }
