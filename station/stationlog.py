"""One logger for many stations (a fleet): the station id as context, not a logger per station.

``StationLog(logging.getLogger("station.fleet"), "CS-00042")`` is a ``LoggerAdapter``: each line
reads ``[CS-00042] message`` and its record carries ``record.station``. Python keeps every named
logger for the life of the process, so 10,000 ``logging.getLogger(f"station.{id}")`` would be
10,000 loggers for ever; adapters are small and go with their station.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any


class StationLog(logging.LoggerAdapter):
    __slots__ = ()

    def __init__(self, logger: logging.Logger, station_id: str) -> None:
        super().__init__(logger, {"station": station_id})

    @property
    def station_id(self) -> str:
        return str(self.extra["station"]) if self.extra else ""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = kwargs.get("extra")
        kwargs["extra"] = self.extra if not extra else {**extra, **(self.extra or {})}
        return f"[{self.station_id}] {msg}", kwargs
