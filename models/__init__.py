"""The pure model layer: features, learners, diffusion, quality checks, registry.

Nothing here reads the environment, talks to Kafka or exports metrics: arrays and dicts in,
values out, so every piece can be used from a notebook on a DataFrame.
"""

__all__: list[str] = []
