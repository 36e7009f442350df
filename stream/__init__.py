"""The streaming glue: config, local Kafka tooling, the wire contract, simulator, CLI.

Everything that touches Kafka, the environment or metrics lives here; the logic it calls
lives in :mod:`fraudstream.models`.
"""

__all__: list[str] = []
