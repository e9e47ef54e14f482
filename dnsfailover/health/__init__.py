"""Health: rise/fall hysteresis per instance and check, and immutable snapshots of it.

Pure: values and a clock in, values out; no I/O. Imports the result values and config durations
only.
"""

from dnsfailover.health.tracker import (
    CheckHealth,
    HealthSnapshot,
    HealthTracker,
    InstanceHealth,
    State,
    step,
)

__all__ = ["CheckHealth", "HealthSnapshot", "HealthTracker", "InstanceHealth", "State", "step"]
