"""Tabular diffusion for synthetic frauds (placeholder until the diffusion module lands)."""

__all__: list[str] = []
