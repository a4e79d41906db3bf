"""The security event sources (InvalidMessages, MemoryExhaustion, TamperDetectionActivated) are
version independent: station/security_events.py. Kept here for the 1.6 imports."""

from station.security_events import (
    INVALID_MESSAGES_INTERVAL_S,
    MEMORY_EXHAUSTION_INTERVAL_S,
    SecurityEventSources,
)

__all__ = ["INVALID_MESSAGES_INTERVAL_S", "MEMORY_EXHAUSTION_INTERVAL_S", "SecurityEventSources"]
