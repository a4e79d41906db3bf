"""Meter value samples (station/core/metering.py): measurands, phases, units, missing quantities,
and that what the 1.6 adapter makes of them is schema-valid MeterValues."""

from __future__ import annotations

import pytest

from hal.sim import SimPlant
from hal.types import MeterReading
from station import ocpp_schema
from station.core.clock import FakeClock
from station.core.metering import SUPPORTED_MEASURANDS, invalid_measurands, parse_measurands, samples_for
from station.ocpp16.adapter import Ocpp16Adapter

FULL = MeterReading(
    energy_import_wh=1234.5678,
    energy_export_wh=12.0,
    power_w=7360.04,
    current_a=(16.004, 15.996, 0.0),
    voltage_v=(230.04, 231.0, 229.0),
    frequency_hz=49.987,
    power_factor=0.98,
    temperature_c=31.5,
)
BARE = MeterReading(energy_import_wh=10.0)


def table(samples):
    return [(s.measurand, s.phase, s.unit, s.value) for s in samples]


def test_energy_register_in_wh_rounded_to_a_tenth():
    assert table(samples_for(FULL, ["Energy.Active.Import.Register"])) == [
        ("Energy.Active.Import.Register", None, "Wh", 1234.6)]


def test_every_supported_measurand_three_phases():
    s = samples_for(FULL, list(SUPPORTED_MEASURANDS), phases=3, offered_a=16.0)
    assert table(s) == [
        ("Energy.Active.Import.Register", None, "Wh", 1234.6),
        ("Energy.Active.Export.Register", None, "Wh", 12.0),
        ("Power.Active.Import", None, "W", 7360.0),
        ("Current.Import", "L1", "A", 16.0),
        ("Current.Import", "L2", "A", 16.0),
        ("Current.Import", "L3", "A", 0.0),
        ("Current.Offered", None, "A", 16.0),
        ("Voltage", "L1-N", "V", 230.0),
        ("Voltage", "L2-N", "V", 231.0),
        ("Voltage", "L3-N", "V", 229.0),
        ("Frequency", None, "Hz", 49.99),
        ("Power.Offered", None, "W", 16.0 * 230 * 3),
        ("Power.Factor", None, "", 0.98),
        ("Temperature", None, "Celsius", 31.5),
        # SoC: the AC meter cannot know it, so it is left out
    ]


def test_single_phase_gives_one_value_per_phase_quantity():
    s = samples_for(FULL, ["Current.Import", "Voltage", "Power.Offered"], phases=1, offered_a=10.0)
    assert table(s) == [("Current.Import", "L1", "A", 16.0), ("Voltage", "L1-N", "V", 230.0),
                        ("Power.Offered", None, "W", 2300.0)]


def test_order_follows_the_configured_measurands():
    s = samples_for(FULL, ["Frequency", "Energy.Active.Import.Register"])
    assert [x.measurand for x in s] == ["Frequency", "Energy.Active.Import.Register"]


def test_quantities_the_meter_cannot_deliver_are_left_out():
    s = samples_for(BARE, list(SUPPORTED_MEASURANDS), phases=3)
    assert table(s) == [("Energy.Active.Import.Register", None, "Wh", 10.0)]


def test_offered_quantities_need_an_offered_current():
    assert samples_for(FULL, ["Current.Offered", "Power.Offered"], offered_a=None) == []
    assert table(samples_for(FULL, ["Current.Offered"], offered_a=0.0)) == [("Current.Offered", None, "A", 0.0)]


def test_no_measurands_no_samples():
    assert samples_for(FULL, []) == []


@pytest.mark.parametrize(
    "csv,parsed,invalid",
    [
        ("", [], []),
        ("Energy.Active.Import.Register", ["Energy.Active.Import.Register"], []),
        (" Voltage , Current.Import ,", ["Voltage", "Current.Import"], []),
        ("Voltage,Nonsense,energy.active.import.register", ["Voltage", "Nonsense", "energy.active.import.register"],
         ["Nonsense", "energy.active.import.register"]),
        ("RPM", ["RPM"], ["RPM"]),  # a 1.6 measurand this station cannot measure
    ],
)
def test_parse_and_check_measurand_lists(csv, parsed, invalid):
    assert parse_measurands(csv) == parsed
    assert invalid_measurands(csv) == invalid


def test_simulated_plant_samples_follow_the_ev_with_a_fake_clock():
    clock = FakeClock()
    plant = SimPlant(clock=clock.monotonic, start_wh=500.0)
    plant.plug(16, 1)
    plant.relay.closed = True
    plant.pilot.offered_a = 32.0
    clock.advance(3600)  # one hour at 16 A x 230 V on one phase
    s = {(x.measurand, x.phase): x.value
         for x in samples_for(plant.reading(), ["Energy.Active.Import.Register", "Power.Active.Import",
                                                "Current.Import"], phases=3)}
    assert s[("Energy.Active.Import.Register", None)] == pytest.approx(500.0 + 16 * 230)
    assert s[("Power.Active.Import", None)] == 16 * 230
    assert (s[("Current.Import", "L1")], s[("Current.Import", "L2")], s[("Current.Import", "L3")]) == (16.0, 0.0, 0.0)


@pytest.mark.parametrize("context", ["Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End",
                                     "Trigger"])
def test_ocpp16_sampled_values_of_every_measurand_are_schema_valid(context):
    """What the 1.6 adapter sends must pass the MeterValues schema: units and phases from its enums."""
    samples = samples_for(FULL, list(SUPPORTED_MEASURANDS), phases=3, offered_a=16.0)
    values = [Ocpp16Adapter._sampled_value(s, context) for s in samples]
    payload = {"connectorId": 1, "transactionId": 1,
               "meterValue": [{"timestamp": "2026-01-01T00:00:00.000Z", "sampledValue": values}]}
    ocpp_schema.validate("1.6", "MeterValues", payload)
    freq = next(v for v in values if v["measurand"] == "Frequency")
    assert freq["unit"] == "Hertz"  # 1.6 has no "Hz"; its note on Frequency names Hertz
    for v in values:
        float(v["value"])
