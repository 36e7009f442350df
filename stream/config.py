"""The one configuration object, read once in the entry point and passed down.

Every field can be set from the environment as ``FRAUDSTREAM_<FIELD>`` (upper case); nested
topic names as ``FRAUDSTREAM_TOPICS__<NAME>``. A bad value fails at start-up with a message
naming the variable (see :func:`load_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..models.days import DAY_S

__all__ = ["ConfigError", "Settings", "TopicNames", "load_settings", "ENV_PREFIX"]

ENV_PREFIX = "FRAUDSTREAM_"
_NESTED = "__"


class TopicNames(BaseModel):
    """Topic names of the wire contract v1 (docs/contract.md)."""

    model_config = ConfigDict(frozen=True)

    transactions: str = "transactions"
    labels: str = "labels"
    scores: str = "scores"
    transactions_dlq: str = "transactions.dlq"
    labels_dlq: str = "labels.dlq"
    training_examples: str = "training-examples"
    model_updates: str = "model-updates"
    synthetic_frauds: str = "synthetic-frauds"
    control: str = "fraudstream-control"


class Settings(BaseSettings):
    """fraudstream's settings. Defaults run everything against the local broker."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=_NESTED,
        frozen=True,
        extra="ignore",
    )

    # --- Kafka connection -------------------------------------------------------------
    broker_url: str = Field(
        "kafka://127.0.0.1:9092",
        description="Bootstrap servers, comma separated; `kafka://` prefix optional.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    # --- Topics -----------------------------------------------------------------------
    topics: TopicNames = TopicNames()
    partitions: int = Field(8, ge=1, le=1024, description="Partitions of transactions/labels/scores.")
    replication_factor: int = Field(1, ge=1, le=16)
    retention_hours: int = Field(24 * 7, ge=1, description="Retention of the event topics.")
    dlq_retention_hours: int = Field(24 * 30, ge=1, description="Dead letters are kept longer.")

    # --- Local broker (tests and demo) -------------------------------------------------
    kafka_home: Path = Field(
        Path.home() / ".cache" / "fraudstream" / "kafka",
        description="Where the broker's jars are cached (outside the repository).",
    )
    kafka_data_dir: Path = Field(
        Path.home() / ".cache" / "fraudstream" / "kafka-data",
        description="The local broker's KRaft log directory and its pid/port files.",
    )
    kafka_port: int = Field(9092, ge=1, le=65535)

    # --- Service ----------------------------------------------------------------------
    model_registry: Path = Field(Path("./var/registry"), description="Model registry directory.")
    metrics_port: int = Field(9108, ge=0, le=65535, description="0 disables the HTTP endpoint.")
    metrics_bind: str = Field(
        "127.0.0.1",
        description="Address the worker's and the trainer's metrics endpoints listen on "
                    "(0.0.0.0: every interface, as inside a container).")
    max_message_bytes: int = Field(64 * 1024, ge=256, description="Larger payloads are dead-lettered.")
    # Input bounds of the wire contract (docs/contract.md, "Bounds"): a record outside them
    # is dead-lettered with its reason, never learned from or allowed to move state.
    max_amount: float = Field(
        10_000_000.0, gt=0,
        description="Largest transaction amount accepted (in the card's currency).")
    max_feature_abs: float = Field(
        1e9, gt=0, description="Largest absolute value of any numeric feature on any topic.")
    max_id_length: int = Field(128, ge=1, le=128, description="Longest tx/card/terminal id.")
    max_json_depth: int = Field(16, ge=2, le=256, description="Deepest JSON nesting accepted.")
    max_future_skew_s: float = Field(
        DAY_S, gt=0,
        description="How far an event time may run ahead of its partition's watermark "
                    "(or of the wall clock, before the partition has one).")
    max_past_skew_s: float = Field(
        40 * DAY_S, gt=0,
        description="How far an event time may lag behind its partition's watermark.")
    label_delay_days: float = Field(7.0, ge=0, description="How long until a fraud becomes known.")

    # --- Scoring worker ----------------------------------------------------------------
    app_id: str = Field("fraudstream", description="Consumer group / faust app id of the workers.")
    worker_id: str = Field(
        "worker-1", description="Names this worker's online-learner checkpoint and state folder.")
    state_dir: Path = Field(
        Path("./var/state"),
        description="Local state of the workers (RocksDB tables, terminal replica), one folder "
                    "per app id and worker id; keep it across restarts: it is what makes "
                    "them fast.")
    standby_replicas: int = Field(
        1, ge=0, le=3,
        description="Standby copies of each table partition kept by other workers (faust).")
    session_timeout_s: float = Field(
        10.0, ge=6, le=300,
        description="Kafka consumer-group session timeout: how long a crashed worker's "
                    "partitions wait before another (or its restart) takes them.")
    card_cache_per_partition: int = Field(
        20_000, ge=0,
        description="Card states kept in memory per partition (the rest are read from RocksDB).")
    view_save_every_s: float = Field(
        15.0, gt=0, description="How often the terminal replica is saved to the state folder.")
    batch_max: int = Field(500, ge=1, le=10_000, description="Largest scoring micro-batch.")
    batch_within_s: float = Field(0.01, gt=0, le=5, description="Longest wait to fill a micro-batch.")
    label_batch_max: int = Field(
        64, ge=1, le=10_000,
        description="Largest label micro-batch where labels are joined inline: a label batch "
                    "holds the event loop while it runs, so small ones keep scoring latency "
                    "low (a label process of its own takes batch_max).")
    label_defer_max_s: float = Field(
        1.0, ge=0, le=60,
        description="Longest a label batch waits while transactions are queued for scoring.")
    label_mode: Literal["all", "fraud_only"] = Field(
        "all", description="Explicit labels for every transaction, or only for frauds.")
    maturity_days: float | None = Field(
        None, ge=0, description="fraud_only: unlabelled after this long = legitimate (default: label delay).")
    review_threshold: float = Field(0.5, ge=0, le=1)
    decline_threshold: float = Field(0.9, ge=0, le=1)
    online_model: Literal["binned", "logreg", "arf", "hoeffding"] = Field(
        "binned", description="The online learner's model (models/online.py).")
    online_fraud_weight: float = Field(1.0, gt=0, description="Weight of a fraud in online learning.")
    feature_set: Literal["extended", "handbook"] = Field(
        "extended", description="Feature set of the models (docs/features.md); the schema hash "
                                "follows it, so a model trained on another set is refused.")
    prequential_window: int = Field(20_000, ge=100, description="Labelled examples in the quality window.")
    max_pending_snapshots: int = Field(
        1_000_000, ge=1000,
        description="Cap on scoring-time snapshots waiting for their label, per worker; past it "
                    "the oldest is dropped and counted (a stalled label feed must not grow memory).")
    max_waiting_labels: int = Field(
        200_000, ge=1000,
        description="Cap on labels waiting for their transaction's snapshot, per worker; past it "
                    "the oldest is dropped and counted (labels for unknown transactions).")
    commit_interval_s: float = Field(
        1.0, gt=0, le=60,
        description="Offset commit interval; also how much is re-scored after a crash.")
    gil_switch_interval_ms: float = Field(
        1.0, gt=0, le=100,
        description="How long a worker's thread may hold the GIL while another waits "
                    "(sys.setswitchinterval; Python's default is 5 ms): faust's consumer has a "
                    "thread of its own where kafka_consumer_thread is set (README, known issues).")
    kafka_consumer_thread: bool = Field(
        False,
        description="Run faust's Kafka consumer in a thread with its own event loop, as faust "
                    "does by default, instead of on the worker's loop (stream/loop_consumer.py).")
    stop_timeout_s: float = Field(
        25.0, gt=0,
        description="A worker process still stopping this long after a signal exits with "
                    "status 75 (a broker that is gone makes faust's stop wait; the default "
                    "comes before compose's 30 s grace period).")
    checkpoint_every_s: float = Field(30.0, gt=0, description="Online learner checkpoint interval.")
    label_process: Literal["child", "separate", "inline"] = Field(
        "child",
        description="Where the label path (labels, the join, learning, training examples) runs: "
                    "child: a process the worker starts, at lower CPU priority; separate: a "
                    "process started on its own (`fraudstream worker --role label`); inline: in "
                    "the scoring worker's event loop (one process, fewer moving parts).")
    worker_role: Literal["score", "label"] = Field(
        "score", description="What this worker process does (`fraudstream worker --role`).")
    label_metrics_port: int = Field(
        9110, ge=0, le=65535, description="Metrics endpoint of a worker's label process; 0 disables it.")
    label_nice: int = Field(
        10, ge=0, le=19,
        description="How much lower the label process's CPU priority is than the scoring "
                    "worker's: under load the scores get the CPU first, the labels catch up.")
    label_sched_idle: bool = Field(
        True,
        description="Run the label process under Linux's SCHED_IDLE policy (weight 3 against "
                    "a normal process's 1,024, preempted at once when a scoring or broker thread "
                    "wakes): its bursts stay out of the scoring tail; under a long CPU-bound "
                    "backlog its labels wait for it to end (README, known issues).")
    learner_sync_s: float = Field(
        2.0, gt=0, le=300,
        description="How often the label process checkpoints its online learner and the "
                    "scoring worker picks the checkpoint up: the delay before a label moves scores.")
    extra_features: tuple[str, ...] = Field(
        (), description="Names of numeric `features` passed through to the models (JSON list).")
    online_synthetic_weight: float = Field(
        0.5, ge=0, description="Weight of a synthetic fraud in online learning (0: ignore them).")

    # --- Background trainer --------------------------------------------------------------
    trainer_metrics_port: int = Field(9109, ge=0, le=65535, description="0 disables it.")
    trainer_nice: int = Field(
        10, ge=0, le=19, description="CPU niceness of the trainer: scoring keeps the CPU first.")
    trainer_window_days: float = Field(30.0, gt=0, description="Training window, in event time.")
    trainer_max_rows: int = Field(2_000_000, ge=1000, description="Memory bound of the window.")
    trainer_interval_s: float = Field(600.0, gt=0, description="Wall time between scheduled cycles.")
    trainer_cron: str | None = Field(
        None, description="A 5-field cron expression (UTC) instead of the interval.")
    trainer_new_frauds_trigger: int = Field(
        200, ge=1, description="Start a cycle early once this many new frauds have arrived.")
    trainer_cycle_timeout_s: float = Field(1800.0, gt=0, description="A cycle's time limit.")
    trainer_holdout_days: float = Field(7.0, gt=0, description="Holdout: the window's last days.")
    trainer_gap_days: float | None = Field(
        None, ge=0, description="Unused days between train and holdout (default: the label delay).")
    trainer_min_frauds: int = Field(
        30, ge=10, description="Fewer training frauds than this: the cycle does not train.")
    trainer_min_fit_frauds: int = Field(
        100, ge=2, description="Fewer training frauds than this to fit the diffusion model on "
                              "(after the quality and validation hold-outs): the cycle trains "
                              "without synthetic rows (a few dozen rows are memorised).")
    trainer_synthetic_ratio: float = Field(
        1.0, ge=0, description="Synthetic frauds per real training fraud (0: no augmentation).")
    trainer_diffusion_steps: int | None = Field(
        None, ge=1,
        description="Diffusion training steps (default: about 6 per fraud, 500 to 3000).")
    trainer_synthesis_model: Literal["frauds_only", "conditional"] = Field(
        "frauds_only",
        description="The diffusion model of synthetic frauds: fitted on the training frauds "
                    "alone, or class-conditional on the frauds plus 4 legitimate rows each "
                    "(classifier-free guidance).")
    trainer_synthesis_target: Literal["none", "novel", "boundary", "low", "clusters"] = Field(
        "novel",
        description="Which sampled frauds are kept: the first ones (none), or of "
                    "FRAUDSTREAM_TRAINER_SYNTHESIS_OVERSAMPLE x as many candidates the first "
                    "ones that are no near-copy of a training fraud (novel, the default), those "
                    "a model on the real rows scores nearest the review threshold (boundary) or "
                    "lowest (low), or those filling rare fraud clusters (clusters).")
    trainer_synthesis_oversample: int = Field(
        3, ge=1, le=20, description="Candidates sampled per synthetic fraud kept (targeted).")
    trainer_device: str = Field("auto", description="auto, cpu or cuda[:N] for the diffusion model.")
    trainer_max_c2st_auc: float = Field(0.75, gt=0.5, le=1, description="Quality gate.")
    trainer_max_dcr_share: float = Field(0.10, gt=0, le=1, description="Quality gate.")
    trainer_promote_margin: float = Field(
        0.005, ge=-1, le=1,
        description="Promote when the lower bound of the challenger's AP gain over the champion "
                    "(paired bootstrap on the holdout) is above this; -1 promotes every challenger.")
    trainer_promote_confidence: float = Field(
        0.9, gt=0, lt=1, description="Two-sided confidence of the AP gain intervals.")
    trainer_stale_after_days: float = Field(
        0.0, ge=0,
        description="A champion whose training data ends this many days before the "
                    "challenger's is stale: the challenger replaces it unless the champion is "
                    "shown better (the gain's upper bound below zero); 0 (the default): never "
                    "stale, a challenger is promoted only when it is shown better.")
    trainer_bootstrap_resamples: int = Field(
        1000, ge=50, le=100_000,
        description="Paired bootstrap resamples of the holdout (time grows with holdout rows).")
    trainer_synthetic_ratios: tuple[float, ...] = Field(
        (0.0, 0.5, 1.0, 2.0),
        description="Synthetic ratios the trainer chooses from by validation on the training "
                    "period's last FRAUDSTREAM_TRAINER_VALIDATION_DAYS (JSON list; [] always uses "
                    "FRAUDSTREAM_TRAINER_SYNTHETIC_RATIO).")
    trainer_validation_days: float = Field(
        3.0, gt=0, description="Last days of the training period that judge the synthetic ratios.")
    trainer_ledger_cycles: int = Field(
        8, ge=1, le=100, description="Measured cycles the augmentation ledger keeps.")
    trainer_ledger_min_cycles: int = Field(
        5, ge=1, le=100,
        description="Measured cycles before the ledger may switch synthesis off.")
    trainer_synthesis_retest_every: int = Field(
        5, ge=1, description="While the ledger has synthesis off, every this many-th cycle re-tests it.")
    trainer_top_k_cards: int = Field(100, ge=1, description="k of card precision@k.")
    trainer_alert_budget: float = Field(100, gt=0, description="Alerts per day (or share if < 1).")
    trainer_xgb_estimators: int = Field(300, ge=1)
    trainer_xgb_max_depth: int = Field(5, ge=1)
    trainer_threads: int = Field(1, ge=1, description="CPU threads for XGBoost and torch.")
    trainer_keep_versions: int = Field(10, ge=2, description="Versions kept in the registry.")
    trainer_publish_synthetic: bool = Field(
        False, description="Publish accepted synthetic frauds for the online learners.")
    trainer_synthetic_publish_cap: int = Field(
        500, ge=0, description="Most synthetic frauds published per cycle.")
    trainer_shadow_challengers: bool = Field(
        False, description="Deploy a challenger that is not promoted in shadow.")
    seed: int = 0

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> "Settings":
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                "security_protocol is SASL_*: set FRAUDSTREAM_SASL_MECHANISM, "
                "FRAUDSTREAM_SASL_USERNAME and FRAUDSTREAM_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _ledger_consistent(self) -> "Settings":
        if self.trainer_ledger_min_cycles > self.trainer_ledger_cycles:
            raise ValueError("FRAUDSTREAM_TRAINER_LEDGER_MIN_CYCLES must not exceed "
                             "FRAUDSTREAM_TRAINER_LEDGER_CYCLES")
        if any(not 0 <= r <= 100 for r in self.trainer_synthetic_ratios):
            raise ValueError("FRAUDSTREAM_TRAINER_SYNTHETIC_RATIOS must be within [0, 100]")
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "Settings":
        if self.review_threshold > self.decline_threshold:
            raise ValueError("FRAUDSTREAM_REVIEW_THRESHOLD must not exceed FRAUDSTREAM_DECLINE_THRESHOLD")
        return self

    @property
    def maturity_s(self) -> float:
        days = self.label_delay_days if self.maturity_days is None else self.maturity_days
        return days * DAY_S

    @property
    def worker_state_dir(self) -> Path:
        """This worker's own state folder (two workers must never share one: RocksDB locks it)."""
        return Path(self.state_dir) / self.app_id / self.worker_id

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` entries for kafka-python / aiokafka."""
        servers = []
        for part in self.broker_url.split(","):
            part = part.strip()
            if "://" in part:
                part = part.split("://", 1)[1]
            if part:
                servers.append(part)
        return servers

    @property
    def faust_broker(self) -> str:
        """The broker URL in faust's ``kafka://h1:p1;h2:p2`` form."""
        return "kafka://" + ";".join(self.bootstrap_servers)

    def kafka_python_security(self) -> dict[str, object]:
        """Security keyword arguments shared by kafka-python clients."""
        kwargs: dict[str, object] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol.endswith("SSL"):
            kwargs["ssl_cafile"] = str(self.ssl_cafile) if self.ssl_cafile else None
            kwargs["ssl_certfile"] = str(self.ssl_certfile) if self.ssl_certfile else None
            kwargs["ssl_keyfile"] = str(self.ssl_keyfile) if self.ssl_keyfile else None
            kwargs["ssl_password"] = (
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            )
        return kwargs


class ConfigError(SystemExit):
    """Raised (exit status 2) when the environment holds an invalid setting."""


def _env_name(loc: tuple[object, ...]) -> str:
    return ENV_PREFIX + _NESTED.join(str(part) for part in loc).upper()


def load_settings(**overrides: object) -> Settings:
    """Build the settings once; turn validation errors into messages naming the env var.

    >>> load_settings(partitions=4).partitions
    4
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err.get("loc") or ())
            if not loc:
                lines.append(f"  FRAUDSTREAM_*: {err['msg']}")
                continue
            # Never echo what was given for a secret.
            shown = "" if "password" in str(loc[-1]) else f" (got {err.get('input')!r})"
            lines.append(f"  {_env_name(loc)}: {err['msg']}{shown}")
        raise ConfigError("invalid fraudstream configuration:\n" + "\n".join(lines)) from None
