"""The version-independent station core: EVSEs, connectors, transactions, authorization.

Plain Python with no I/O: it never imports ocpp, websockets, sqlite3 or a hardware library.
"""
