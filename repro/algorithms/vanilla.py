"""Vanilla: the conventional multi-modal learning process (§2), regular steps only."""

from .base import Algorithm, PackedPolicy


class Vanilla(Algorithm):
    """Exactly the base behaviour; named so the registry maps every algorithm to a class of its own."""

    packed_policy = PackedPolicy
