"""The champion: the network the registry serves, replaced only by one shown better on
validation reviews it was not chosen on.

The candidate is the network, of all the report's, with the best accuracy on one half of the
validation reviews (the even positions of the validation split); it is then tested against the
champion on the other half, paired review by review (McNemar's exact one-sided test at 5%), with
the champion's own validation predictions, which its evaluation kept with its MLflow run. The
best of many networks on the reviews that chose it is better there by luck as well; on the
other half it is not, so the test's level holds however many networks competed
(tests/test_champion.py: a candidate no better than the champion, the best of 30, is promoted
at most 5% of the time). A champion scored on another validation split, or registered before
its predictions were kept, is weighed by its recorded accuracy instead (an unpaired test,
which errs on the side of keeping it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imdb_sentiment import significance, verdicts
from imdb_sentiment.params import ModelParams


def halves(reviews: int) -> tuple[np.ndarray, np.ndarray]:
    """The validation reviews that choose the candidate (even positions) and those that test
    it (odd)."""
    positions = np.arange(reviews)
    return positions[positions % 2 == 0], positions[positions % 2 == 1]


def choose(runs: pd.DataFrame, right: np.ndarray) -> tuple[pd.Series, int]:
    """The candidate: the row of ``runs`` whose network is right on most of the choosing half
    (``right``: ``[networks, reviews]``, 1 where a network is right, in ``runs``' order); ties
    go to the network listed first. Also its position."""
    choosing, _ = halves(right.shape[1])
    position = int(np.argmax(right[:, choosing].mean(axis=1)))
    return runs.iloc[position], position


def decide(
    candidate: pd.Series,
    candidate_right: np.ndarray,
    networks: int,
    incumbent: dict | None,
    incumbent_right: np.ndarray | None,
) -> tuple[bool, str]:
    """Whether ``candidate`` (a row of the runs, right on ``candidate_right`` of every
    validation review) replaces the registry's champion, and why, in one sentence.
    ``incumbent`` is registry.champion_summary's, or None; ``incumbent_right`` the champion's
    correctness on the same validation reviews, or None when it is not known."""
    name = f"{candidate['model']} (seed {candidate['seed']})"
    if incumbent is None:
        return True, verdicts.first_champion_sentence(name)
    run_id = candidate.get("mlflow_run_id")
    if run_id is not None and incumbent.get("source_run_id") == run_id:
        # A report rerun over the same runs: the champion is the candidate itself.
        return False, verdicts.same_champion_sentence(incumbent["name"])
    _, testing = halves(len(candidate_right))
    if incumbent_right is not None:
        promotion = significance.paired_promotion(
            candidate_right[testing], incumbent_right[testing]
        )
        sentence = verdicts.paired_promotion_sentence(
            name, promotion, networks, len(testing), incumbent["name"]
        )
        return promotion.promote, sentence
    promotion = significance.promotion(
        float(candidate_right[testing].mean()),
        len(testing),
        incumbent["val_accuracy"],
        incumbent["val_reviews"] or len(candidate_right),
    )
    sentence = verdicts.promotion_sentence(name, promotion, len(testing), incumbent["name"])
    return promotion.promote, sentence


def version_tags(
    candidate: pd.Series, model: ModelParams, candidate_right: np.ndarray, split: str
) -> dict[str, str]:
    """Tags of a registered model version: the pipeline's model name and seed, its run, its
    effective hyperparameters, its validation accuracy (and on which split: ``split``, the
    md5 of val.npz) and its test metrics."""
    metrics = ("test_accuracy", "test_loss", "test_f1", "test_roc_auc")
    return {
        "pipeline_model": model.name,
        "seed": str(model.seed),
        "source_run_id": candidate["mlflow_run_id"],
        **{f"param_{key}": str(value) for key, value in model.model_dump().items()},
        **{metric: str(candidate[metric]) for metric in metrics},
        "val_accuracy": str(float(candidate_right.mean())),
        "val_reviews": str(len(candidate_right)),
        "val_split_md5": split,
    }
