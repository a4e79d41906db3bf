"""ocpp-station: charging-station firmware and simulator speaking OCPP 1.6J (2.0.1 planned)."""

__version__ = "0.1.0"
