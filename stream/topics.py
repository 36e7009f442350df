"""The contract's topics: their specs and idempotent creation with kafka-python's admin client."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from .config import Settings

__all__ = ["TopicSpec", "topic_specs", "create_topics", "admin_client", "internal_topics",
           "changelog_topics", "TABLES", "CHANGELOG_CONFIG", "terminal_events_retention_ms"]

log = logging.getLogger("fraudstream.topics")

_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def internal_topics(settings: Settings) -> dict[str, str]:
    """The workers' internal topics (not part of the contract), named after the app id."""
    return {"terminal_events": f"{settings.app_id}-terminal-events"}


TABLES = ("card-state", "pending-snapshots", "waiting-labels")
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
    """faust's changelog topic names of the workers' tables."""
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


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


def create_topics(settings: Settings, update_configs: bool = False) -> dict[str, str]:
    """Create missing topics; returns ``{name: "created" | "exists (N partitions)"}``.

    ``update_configs`` also brings existing internal topics to the current settings (needs
    ALTER_CONFIGS: the operator's ``fraudstream topics create`` does it, the services,
    which hold only their minimal ACLs, do not).
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
        if update_configs:
            _update_internal_configs(admin, settings, [s for s in specs if s.name in existing])
        described = admin.describe_topics([s.name for s in specs])
        partitions = {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}
        return {name: f"{state} ({partitions.get(name, '?')} partitions)" for name, state in outcome.items()}
    finally:
        admin.close()


def _update_internal_configs(admin: KafkaAdminClient, settings: Settings,
                             existing: list[TopicSpec]) -> None:
    """Bring the workers' own topics, made by an older version, to the current settings.

    The contract's topics are the operators' (retention is theirs to change); the internal
    ones are the workers', and a changelog created before compaction was configured would
    keep growing with history.
    """
    from kafka.admin import ConfigResource, ConfigResourceType

    ours = set(changelog_topics(settings)) | set(internal_topics(settings).values())
    resources = [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=spec.config)
                 for spec in existing if spec.name in ours]
    if not resources:
        return
    try:
        # {resource type: {topic: result}}; a result that is an error class or instance failed
        response = admin.alter_configs(resources)
        errors = [(name, str(result)) for by_name in response.values()
                  for name, result in by_name.items() if _is_error(result)]
    except Exception as exc:  # e.g. a principal without ALTER_CONFIGS: the topics still work
        errors = [(type(exc).__name__, str(exc))]
    if errors:
        log.warning("could not update the settings of the workers' internal topics (%s); "
                    "it needs ALTER_CONFIGS on them", errors)


def _is_error(result: object) -> bool:
    from kafka.errors import KafkaError, NoError

    if isinstance(result, type):
        return issubclass(result, KafkaError) and result is not NoError
    return isinstance(result, KafkaError) and not isinstance(result, NoError)
