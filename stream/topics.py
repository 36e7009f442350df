"""The contract's topics: their specs and idempotent creation with kafka-python's admin client."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from .config import Settings

__all__ = ["TopicSpec", "topic_specs", "create_topics", "admin_client", "internal_topics",
           "changelog_topics", "label_app_id", "TABLES", "CHANGELOG_CONFIG", "terminal_events_retention_ms"]

_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def internal_topics(settings: Settings) -> dict[str, str]:
    """The workers' internal topics (not part of the contract), named after the app id."""
    return {"terminal_events": f"{settings.app_id}-terminal-events",
            "snapshots": f"{settings.app_id}-snapshots"}


def label_app_id(settings: Settings) -> str:
    """The faust app id (and consumer group) of the label processes.

    Their own group: they consume ``labels`` and the snapshots topic, co-partitioned, while
    the scoring workers' group consumes ``transactions``. Inline, the scoring app does both.
    """
    return settings.app_id if settings.label_process == "inline" else f"{settings.app_id}-labels"


SCORE_TABLES = ("card-state",)
LABEL_TABLES = ("pending-snapshots", "waiting-labels")
TABLES = SCORE_TABLES + LABEL_TABLES
"""The workers' faust tables (stream/app.py); each has a compacted changelog topic."""

#: Changelog settings that let the broker really compact: the active segment is never
#: compacted, so it rolls every minute (Kafka's default is 7 days, during which every write
#: of a busy table stays and a new owner reads them all), the cleaner starts at 10 % of
#: superseded records (50 %), and a deleted key's tombstone (a joined snapshot) goes after
#: ten minutes (a day; a restore takes seconds, so it cannot miss a delete).
CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(60_000),
    "segment.bytes": str(64 << 20),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(_HOUR_MS // 6),
}


def changelog_topics(settings: Settings) -> list[str]:
    """faust's changelog topic names of the workers' tables (the label tables' under the
    label processes' app id)."""
    labels = label_app_id(settings)
    return ([f"{settings.app_id}-{table}-changelog" for table in SCORE_TABLES]
            + [f"{labels}-{table}-changelog" for table in LABEL_TABLES])


def terminal_events_retention_ms(settings: Settings) -> int:
    """The terminal replica's whole horizon (label delay + 30-day window) plus two days."""
    return int((settings.label_delay_days + 30 + 2) * 24 * _HOUR_MS)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the wire contract and the workers' internal topics."""
    t = settings.topics
    n = settings.partitions
    events = {"retention.ms": str(settings.retention_hours * _HOUR_MS)}
    dead = {"retention.ms": str(settings.dlq_retention_hours * _HOUR_MS)}
    # The trainer rebuilds its window (30 days by default) from here: keep it at least that long.
    examples = {"retention.ms": str(max(settings.retention_hours, 24 * 45) * _HOUR_MS)}
    # Promotions are few and must never expire: a worker started months later still needs
    # the current champion. Compaction keeps the last announcement per model family key.
    updates = {"cleanup.policy": "compact", "retention.ms": "-1"}
    return [
        TopicSpec(t.transactions, n, events),
        TopicSpec(t.labels, n, events),
        TopicSpec(t.scores, n, events),
        TopicSpec(t.transactions_dlq, n, dead),
        TopicSpec(t.labels_dlq, n, dead),
        TopicSpec(t.training_examples, n, examples),
        TopicSpec(t.model_updates, 1, updates),
        # Every worker reads these two whole (not as a group), so one partition each.
        TopicSpec(t.synthetic_frauds, 1, events),
        TopicSpec(t.control, 1, events),
        # Every worker reads all of it into its terminal replica (stream/terminal_view.py);
        # it holds the replica's horizon, so a worker without a saved replica rebuilds it here.
        TopicSpec(internal_topics(settings)["terminal_events"], n,
                  {"retention.ms": str(terminal_events_retention_ms(settings))}),
        # Scoring-time snapshots, from a scoring worker to the label process that owns the
        # same partition of ``labels`` (co-partitioned: same count, same partition number).
        TopicSpec(internal_topics(settings)["snapshots"], n, events),
    ] + [
        # Created up front: workers starting together each try to create them, and one that
        # subscribed before a changelog existed never restored or wrote that table.
        TopicSpec(name, n, dict(CHANGELOG_CONFIG)) for name in changelog_topics(settings)
    ]


def admin_client(settings: Settings, **kwargs: object) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="fraudstream-admin",
        **settings.kafka_python_security(),
        **kwargs,
    )


def create_topics(settings: Settings) -> dict[str, str]:
    """Create missing topics; returns ``{name: "created" | "exists (N partitions)"}``.

    Existing topics keep their settings: a changelog made before ``CHANGELOG_CONFIG`` existed
    is brought to it by hand (docs/operations.md, "Restarts and local state").
    """
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        specs = topic_specs(settings)
        outcome: dict[str, str] = {}
        missing = [s for s in specs if s.name not in existing]
        for spec in specs:
            if spec.name in existing:
                outcome[spec.name] = "exists"
        if missing:
            new = [
                NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.config)
                for s in missing
            ]
            try:
                admin.create_topics(new, validate_only=False)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: that is the goal anyway
            for spec in missing:
                outcome[spec.name] = "created"
        described = admin.describe_topics([s.name for s in specs])
        partitions = {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}
        return {name: f"{state} ({partitions.get(name, '?')} partitions)" for name, state in outcome.items()}
    finally:
        admin.close()

