"""Modbus register maps of the supported energy meters, as plain data.

A model is one :class:`RegisterMap` in :data:`MODELS`. Each map says which Modbus function reads
it (0x04 input or 0x03 holding registers), the word order of multi-register values, and per
quantity the register address, encoding and scale. ``physical value = raw * scale`` in the unit
named by the quantity (energy in kWh; the meter backend converts to Wh). A quantity a model does
not measure is simply absent from its map.

Addresses are the 0-based protocol addresses (what goes on the wire), not the "3xxxx"/"4xxxx"
register numbers of some tables (30001 == input register 0x0000).
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT = 0x04  # Read Input Registers
HOLDING = 0x03  # Read Holding Registers

# Quantities a map may define; the suffix is the unit the scale converts to.
QUANTITIES = (
    "energy_import_kwh",
    "energy_export_kwh",
    "power_w",
    "current_l1_a",
    "current_l2_a",
    "current_l3_a",
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l3_v",
    "frequency_hz",
    "power_factor",
)

# encoding -> number of 16-bit registers
SIZES = {"float32": 2, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}


@dataclass(frozen=True)
class Reg:
    """One quantity: register address, encoding (see :data:`SIZES`), scale to the physical unit."""

    address: int
    encoding: str = "float32"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.encoding not in SIZES:
            raise ValueError(f"unknown encoding {self.encoding!r}")

    @property
    def count(self) -> int:
        return SIZES[self.encoding]

    @property
    def signed(self) -> bool:
        return self.encoding.startswith("int")


@dataclass(frozen=True)
class RegisterMap:
    """How to read one meter model.

    ``word_order`` is ``"big"`` (most significant register first) or ``"little"`` (least
    significant first); bytes inside a register are always big-endian (Modbus). ``max_count`` is
    the most registers the meter answers in one request, ``max_gap`` how many unused registers a
    request may span to save a round trip. If the meter refuses a spanning request with "illegal
    data address", the backend falls back to reading only registers the map names.
    ``int_sentinels``: the meter marks a value it does not have with the largest value of the type
    (0x7FFF.. signed, 0xFFFF.. unsigned); such values read as ``None``.
    """

    name: str
    source: str
    function: int
    word_order: str
    registers: dict[str, Reg]
    max_count: int = 80
    max_gap: int = 40
    int_sentinels: bool = False

    def __post_init__(self) -> None:
        if self.function not in (INPUT, HOLDING):
            raise ValueError(f"{self.name}: function must be 0x03 or 0x04")
        if self.word_order not in ("big", "little"):
            raise ValueError(f"{self.name}: word_order must be 'big' or 'little'")
        unknown = set(self.registers) - set(QUANTITIES)
        if unknown:
            raise ValueError(f"{self.name}: unknown quantities {sorted(unknown)}")
        if "energy_import_kwh" not in self.registers:
            raise ValueError(f"{self.name}: energy_import_kwh is required")


def _f32(address: int) -> Reg:
    return Reg(address, "float32")


# Eastron SDM630-Modbus (V2, MID): "SDM630 Modbus Protocol" (Eastron Electronic, input registers,
# IEEE 754 float32, high word first). Eastron allows up to 40 parameters (80 registers) per request.
SDM630 = RegisterMap(
    name="Eastron SDM630",
    source="Eastron 'SDM630 Modbus Protocol' V1.x, input register table",
    function=INPUT,
    word_order="big",
    registers={
        "voltage_l1_v": _f32(0x0000),
        "voltage_l2_v": _f32(0x0002),
        "voltage_l3_v": _f32(0x0004),
        "current_l1_a": _f32(0x0006),
        "current_l2_a": _f32(0x0008),
        "current_l3_a": _f32(0x000A),
        "power_w": _f32(0x0034),  # total system power
        "power_factor": _f32(0x003E),  # total system power factor
        "frequency_hz": _f32(0x0046),
        "energy_import_kwh": _f32(0x0048),
        "energy_export_kwh": _f32(0x004A),
    },
)

# Eastron SDM120-Modbus (single phase): "SDM120 Modbus Protocol" (Eastron), input registers, float32.
# Only the parameters in the table exist; the holes between them (e.g. 0x0002..0x0005) are not
# documented, so requests do not span them.
SDM120 = RegisterMap(
    name="Eastron SDM120",
    source="Eastron 'SDM120-Modbus Smart Meter Modbus Protocol Implementation', input registers",
    function=INPUT,
    word_order="big",
    registers={
        "voltage_l1_v": _f32(0x0000),
        "current_l1_a": _f32(0x0006),
        "power_w": _f32(0x000C),
        "power_factor": _f32(0x001E),
        "frequency_hz": _f32(0x0046),
        "energy_import_kwh": _f32(0x0048),
        "energy_export_kwh": _f32(0x004A),
    },
    max_gap=0,
)

# Eastron SDM72D-M (first version): its protocol table only has total system power (0x0034),
# import (0x0048) and export (0x004A) active energy, total active energy (0x0156). Safe for both
# hardware versions.
SDM72D = RegisterMap(
    name="Eastron SDM72D",
    source="Eastron 'SDM72D-M Modbus Protocol' (V1), input registers",
    function=INPUT,
    word_order="big",
    registers={
        "power_w": _f32(0x0034),
        "energy_import_kwh": _f32(0x0048),
        "energy_export_kwh": _f32(0x004A),
    },
    max_gap=0,
)

# Eastron SDM72D-M-2 (V2): the table follows the SDM630 layout for the quantities used here.
SDM72D_V2 = RegisterMap(
    name="Eastron SDM72D-M v2",
    source="Eastron 'SDM72D-M-2 Modbus Protocol' (V2), input registers (SDM630 layout)",
    function=INPUT,
    word_order="big",
    registers=dict(SDM630.registers),
)

# ABB B23 / B24 (B-series): ABB "B21/B23/B24 User Manual" 2CMC485003M0201, chapter "Communication
# with Modbus": holding registers, big-endian words, unsigned/signed integers with fixed
# resolution; values a meter does not have read as 0xFFFF.. (unsigned) / 0x7FFF.. (signed).
_ABB_REGS = {
    "energy_import_kwh": Reg(0x5000, "uint64", 0.01),  # active import, 0.01 kWh
    "energy_export_kwh": Reg(0x5004, "uint64", 0.01),  # active export, 0.01 kWh
    "voltage_l1_v": Reg(0x5B00, "uint32", 0.1),
    "voltage_l2_v": Reg(0x5B02, "uint32", 0.1),
    "voltage_l3_v": Reg(0x5B04, "uint32", 0.1),
    "current_l1_a": Reg(0x5B0C, "uint32", 0.01),
    "current_l2_a": Reg(0x5B0E, "uint32", 0.01),
    "current_l3_a": Reg(0x5B10, "uint32", 0.01),
    "power_w": Reg(0x5B14, "int32", 0.01),  # active power total, 0.01 W
    "frequency_hz": Reg(0x5B2C, "uint16", 0.01),
    "power_factor": Reg(0x5B3A, "int16", 0.001),  # power factor total
}
ABB_B23 = RegisterMap(
    name="ABB B23",
    source="ABB 'B21/B23/B24 User Manual' 2CMC485003M0201, Modbus register mapping",
    function=HOLDING,
    word_order="big",
    registers=dict(_ABB_REGS),
    max_count=100,
    int_sentinels=True,
)
ABB_B24 = RegisterMap(
    name="ABB B24",
    source="ABB 'B21/B23/B24 User Manual' 2CMC485003M0201, Modbus register mapping",
    function=HOLDING,
    word_order="big",
    registers=dict(_ABB_REGS),
    max_count=100,
    int_sentinels=True,
)

# Carlo Gavazzi EM340 (same table as ET340): "EM300 / ET300 series communication protocol"
# (Carlo Gavazzi), function 03 or 04, INT32 sent least significant word first; the meter answers
# at most 50 registers per request.
EM340 = RegisterMap(
    name="Carlo Gavazzi EM340",
    source="Carlo Gavazzi 'EM340/ET340 Communication protocol' (EM300 series), instantaneous variables",
    function=HOLDING,
    word_order="little",
    registers={
        "voltage_l1_v": Reg(0x0000, "int32", 0.1),
        "voltage_l2_v": Reg(0x0002, "int32", 0.1),
        "voltage_l3_v": Reg(0x0004, "int32", 0.1),
        "current_l1_a": Reg(0x000C, "int32", 0.001),
        "current_l2_a": Reg(0x000E, "int32", 0.001),
        "current_l3_a": Reg(0x0010, "int32", 0.001),
        "power_w": Reg(0x0028, "int32", 0.1),  # W sys
        "power_factor": Reg(0x0031, "int16", 0.001),  # PF sys
        "frequency_hz": Reg(0x0033, "int16", 0.1),
        "energy_import_kwh": Reg(0x0034, "int32", 0.1),  # kWh (+) TOT
        "energy_export_kwh": Reg(0x004E, "int32", 0.1),  # kWh (-) TOT
    },
    max_count=50,
    int_sentinels=True,
)

MODELS: dict[str, RegisterMap] = {
    "sdm630": SDM630,
    "sdm120": SDM120,
    "sdm72d": SDM72D,
    "sdm72d-v2": SDM72D_V2,
    "abb-b23": ABB_B23,
    "abb-b24": ABB_B24,
    "em340": EM340,
}
