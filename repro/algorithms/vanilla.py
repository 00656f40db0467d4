"""Vanilla: the conventional multi-modal learning process (§2), regular steps only."""

from .base import Algorithm


class Vanilla(Algorithm):
    """Exactly the base behaviour; named so the registry maps every algorithm to a class of its own."""
