"""The controller: the only layer that wires config, probes, health, policy, plan and providers
together, and the only one that owns mutable state (the health tracker, the state directory,
the schedule). See `pyproject.toml` [tool.importlinter] for the layering it sits on."""
