"""The contract's topics: their specs and idempotent creation with kafka-python's admin client."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from .config import Settings

__all__ = ["TopicSpec", "topic_specs", "create_topics", "admin_client", "internal_topics",
           "changelog_topics", "TABLES"]

_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def internal_topics(settings: Settings) -> dict[str, str]:
    """The workers' repartition topics (not part of the contract), named after the app id."""
    app = settings.app_id
    return {
        "by_terminal": f"{app}-by-terminal",
        "snapshots": f"{app}-snapshots",
        "terminal_frauds": f"{app}-terminal-frauds",
    }


TABLES = ("card-state", "terminal-state", "pending-snapshots", "waiting-labels")
"""The workers' faust tables (stream/app.py); each has a compacted changelog topic."""


def changelog_topics(settings: Settings) -> list[str]:
    """faust's changelog topic names of the workers' tables."""
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


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
    ] + [
        # Created up front: a consumer that subscribes before a new topic reaches its
        # metadata ignores it until the next rebalance, so faust must find them existing.
        TopicSpec(name, n, events) for name in internal_topics(settings).values()
    ] + [
        # Also up front: workers starting together each try to create them, and one that
        # subscribed before a changelog existed never restored or wrote that table.
        TopicSpec(name, n, {"cleanup.policy": "compact"}) for name in changelog_topics(settings)
    ]


def admin_client(settings: Settings, **kwargs: object) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="fraudstream-admin",
        **settings.kafka_python_security(),
        **kwargs,
    )


def create_topics(settings: Settings) -> dict[str, str]:
    """Create missing topics; returns ``{name: "created" | "exists (N partitions)"}``."""
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
