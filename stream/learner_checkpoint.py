"""The worker's online-learner checkpoint: loaded verified, saved without stopping scoring."""

from __future__ import annotations

import logging
from pathlib import Path

from ..models.online import OnlineLearner
from .config import Settings
from .metrics import WorkerMetrics

__all__ = ["load_learner", "save_learner"]

log = logging.getLogger("fraudstream.worker")


def load_learner(path: Path, settings: Settings, metrics: WorkerMetrics) -> OnlineLearner:
    """This worker's checkpointed learner, verified; a fresh one if there is none or it is refused.

    The checkpoint is pickle, so it is verified against its sha256 sidecar before it is
    unpickled, and refused if its weights are not finite (models/online.py): a tampered or
    poisoned checkpoint costs the learner its history, never the worker its safety.
    """
    s = settings
    if path.exists():
        try:
            learner = OnlineLearner.load(path)
        except Exception as exc:
            metrics.checkpoint_refused.labels("load").inc()
            log.error("refused the online-learner checkpoint %s (%s: %s); the learner "
                      "starts fresh", path, type(exc).__name__, exc)
        else:
            if learner.model == s.online_model:
                log.info("restored online learner from %s (%d examples)", path,
                         learner.n_learned)
                return learner
            # Keeping it would run another model than the one configured, silently.
            log.warning("the online-learner checkpoint %s holds a %r model, the settings "
                        "ask for %r (FRAUDSTREAM_ONLINE_MODEL): the learner starts fresh",
                        path, learner.model, s.online_model)
    return OnlineLearner(model=s.online_model, class_weight_fraud=s.online_fraud_weight,
                         seed=s.seed)


def save_learner(learner: OnlineLearner, path: Path, metrics: WorkerMetrics) -> None:
    """Checkpoint ``learner``; a failure is logged and counted, and the next interval retries."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        learner.save(path)
    except OSError:  # a full disk must not stop scoring
        log.exception("could not checkpoint the online learner to %s", path)
    except ValueError as exc:  # non-finite weights are never written (models/online.py)
        metrics.checkpoint_refused.labels("save").inc()
        log.error("did not checkpoint the online learner: %s", exc)
