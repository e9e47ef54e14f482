"""Policy: decide which instance a service's name should point at, and why."""

from dnsfailover.policy.decide import Decision, Kind, PolicyInput, decide

__all__ = ["Decision", "Kind", "PolicyInput", "decide"]
