"""OCPP 2.0.1 adapter package: the 2.0.1 wire vocabulary over the version-independent core and
services (see ../shared/ARCHITECTURE.md). adapter.py wires it; device_model.py holds the
components and variables; handlers/ has one module per functional block of Part 2."""
