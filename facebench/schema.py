"""What facebench's JSON reports hold: their kinds, the fields other modules read, rate keys.

Every report has a ``kind``. The evaluators write these fields and the readers (the report
renderer, `facebench search --threshold-from`, the study) read them by the names below.

Pair reports (``verification`` from `facebench verify` and the training hook, ``ijb`` for the
IJB 1:1 template pairs) decide "same" iff cos > threshold and hold:

- ``global_threshold`` / ``global_accuracy``: the oracle single threshold and its accuracy;
- ``tar_at_far``, ``tar_at_far_threshold``, ``tar_at_far_far``: for each FAR target (keys from
  :func:`rate_key`), TAR at the lowest threshold whose FAR is at most the target, that threshold
  and the FAR it reaches: applying the threshold to the pairs gives exactly that TAR and FAR;
- IJB only, its published convention: ``tar_at_nearest_far``, ``tar_at_nearest_far_threshold``,
  ``tar_at_nearest_far_far``: TAR at the ROC point whose FPR is NEAREST the target (which may
  lie above it), that point's threshold and its FPR.

Identification reports (``identification``) hold ``dir_at_fpir``, ``dir_threshold`` and
``fpir_actual`` keyed the same way.
"""

from __future__ import annotations

VERIFICATION = "verification"
IJB = "ijb"
TRANSFER = "transfer"
UNIFORM = "uniform"
IDENTIFICATION = "identification"
SEARCH = "search"
#: A run's epoch-mean training losses and its plateau verdict (facebench.train.convergence).
TRAINING = "training"
#: Every kind of report facebench writes.
KINDS = (VERIFICATION, IJB, TRANSFER, UNIFORM, IDENTIFICATION, SEARCH, TRAINING)
#: Kinds scored on pairs (1:1): they carry the pair-report fields of the module docstring.
PAIR_KINDS = (VERIFICATION, IJB)

KIND = "kind"
GLOBAL_THRESHOLD = "global_threshold"
GLOBAL_ACCURACY = "global_accuracy"
TAR_AT_FAR = "tar_at_far"
TAR_AT_FAR_THRESHOLD = "tar_at_far_threshold"
TAR_AT_FAR_FAR = "tar_at_far_far"
TAR_AT_NEAREST_FAR = "tar_at_nearest_far"
TAR_AT_NEAREST_FAR_THRESHOLD = "tar_at_nearest_far_threshold"
TAR_AT_NEAREST_FAR_FAR = "tar_at_nearest_far_far"
DIR_AT_FPIR = "dir_at_fpir"
DIR_THRESHOLD = "dir_threshold"
FPIR_ACTUAL = "fpir_actual"
LEARNED_THRESHOLD = "learned_threshold"
LEARNED_THRESHOLD_UNITS = "learned_threshold_units"
#: Pair reports: the standard 10-fold protocol, EER, ROC AUC and the pair counts.
ACCURACY_10FOLD_MEAN = "accuracy_10fold_mean"
ACCURACY_10FOLD_STD = "accuracy_10fold_std"
EER = "eer"
AUC = "auc"
IMPOSTOR_PAIRS = "impostor_pairs"
#: Uniform reports (closed set, the model's own head): sample-wise, class-wise and uniform
#: accuracy, the uniform threshold t*, the learned threshold's accuracy and the score units.
SAMPLE_ACCURACY = "sample_accuracy"
UNIFORM_ACCURACY = "uniform_accuracy"
UNIFORM_THRESHOLD = "uniform_threshold"
CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED = "class_wise_accuracy_sample_weighted"
CLASS_WISE_ACCURACY_CLASS_MEAN = "class_wise_accuracy_class_mean"
UNIFORM_ACCURACY_AT_LEARNED_THRESHOLD = "uniform_accuracy_at_learned_threshold"
SCORE_UNITS = "score_units"
#: Identification reports: the CMC curve (rank as a string -> rate).
CMC = "cmc"
#: Training reports: epoch-mean losses and the plateau verdict, which holds ``converged``,
#: the last epoch's ``relative_change`` and the ``rule`` applied.
EPOCH_LOSSES = "epoch_losses"
PLATEAU = "plateau"
CONVERGED = "converged"
RELATIVE_CHANGE = "relative_change"
RULE = "rule"

#: The headline of a pair report: what training logs, `facebench verify` prints and the
#: tuning and the study score.
HEADLINE = (ACCURACY_10FOLD_MEAN, ACCURACY_10FOLD_STD, GLOBAL_ACCURACY, GLOBAL_THRESHOLD, EER, AUC)

#: The deployable thresholds of each kind: (field of the single global threshold or None,
#: field of the thresholds per rate target). They are cosines, "same" (or "identified") iff the
#: score is above them, and applied to the report's own data they give exactly the rates beside
#: them (global_accuracy; tar_at_far / tar_at_far_far; dir_at_fpir / fpir_actual).
THRESHOLD_FIELDS = {
    VERIFICATION: (GLOBAL_THRESHOLD, TAR_AT_FAR_THRESHOLD),
    IJB: (GLOBAL_THRESHOLD, TAR_AT_FAR_THRESHOLD),
    IDENTIFICATION: (None, DIR_THRESHOLD),
}


def rate_key(rate: float) -> str:
    """The key of a FAR / FPIR target in every report: ``1e-06``, ``1e-03``, ..."""
    return f"{rate:.0e}"


def val_key(far: float) -> str:
    """The field of the standard protocol's VAL at ``far``: ``val_at_far_1e-3``."""
    return f"val_at_far_{far:.0e}".replace("e-0", "e-")


def headline(report: dict) -> dict:
    """The :data:`HEADLINE` fields of a pair report (None where it lacks one)."""
    return {key: report.get(key) for key in HEADLINE}
