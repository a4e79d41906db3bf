"""OCPP 1.6 configuration keys (station/ocpp16/config_keys.py) on a real SQLite store in a tmp file:
read-write versus read-only, NotSupported, Rejected invalid values, and persistence across reopening."""

from __future__ import annotations

import pytest

from station.ocpp16.config_keys import KEY_RANGES, MAX_MEASURANDS, NS, ConfigurationKeys
from station.store import Store

READ_ONLY = {
    "ConnectorPhaseRotationMaxLength", "GetConfigurationMaxKeys", "MeterValuesAlignedDataMaxLength",
    "MeterValuesSampledDataMaxLength", "NumberOfConnectors", "StopTxnAlignedDataMaxLength",
    "StopTxnSampledDataMaxLength", "SupportedFeatureProfiles", "SupportedFeatureProfilesMaxLength", "SecurityProfile",
    "LocalAuthListMaxLength", "SendLocalListMaxLength",
}
BOOLS = {
    "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled", "AuthorizeRemoteTxRequests", "LocalAuthorizeOffline",
    "LocalPreAuthorize", "StopTransactionOnEVSideDisconnect", "StopTransactionOnInvalidId",
    "UnlockConnectorOnEVSideDisconnect", "LocalAuthListEnabled",
}
UINTS = {
    "BlinkRepeat", "ClockAlignedDataInterval", "ConnectionTimeOut", "HeartbeatInterval", "LightIntensity",
    "MaxEnergyOnInvalidId", "MeterValueSampleInterval", "MinimumStatusDuration", "ResetRetries",
    "TransactionMessageAttempts", "TransactionMessageRetryInterval", "WebSocketPingInterval",
}
# security whitepaper keys: CpoName (a string) and the read-only ones
SECURITY_KEYS = {"CpoName"}
READ_ONLY |= {"CertificateStoreMaxLength", "CertificateSignedMaxChainSize", "AdditionalRootCertificateCheck"}
READ_ONLY |= {"ReserveConnectorZeroSupported"}  # Reservation profile: describes the station
READ_ONLY |= {"ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
              "MaxChargingProfilesInstalled"}  # Smart Charging: what SetChargingProfile accepts
MEASURAND_LISTS = {"MeterValuesAlignedData", "MeterValuesSampledData", "StopTxnAlignedData", "StopTxnSampledData"}
# Core profile keys that OCPP 1.6 section 9.1 requires (required = yes)
CORE_REQUIRED = {
    "AuthorizeRemoteTxRequests", "ClockAlignedDataInterval", "ConnectionTimeOut", "ConnectorPhaseRotation",
    "GetConfigurationMaxKeys", "HeartbeatInterval", "LocalAuthorizeOffline", "LocalPreAuthorize",
    "MeterValuesAlignedData", "MeterValuesSampledData", "MeterValueSampleInterval", "NumberOfConnectors",
    "ResetRetries", "StopTransactionOnEVSideDisconnect", "StopTransactionOnInvalidId", "StopTxnAlignedData",
    "StopTxnSampledData", "SupportedFeatureProfiles", "TransactionMessageAttempts",
    "TransactionMessageRetryInterval", "UnlockConnectorOnEVSideDisconnect",
}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "station.sqlite"


@pytest.fixture
def keys(path):
    store = Store(path)
    yield ConfigurationKeys(store, 2)
    store.close()


def reopen(path, connectors: int = 2) -> ConfigurationKeys:
    return ConfigurationKeys(Store(path), connectors)


def test_all_required_core_keys_exist(keys):
    assert CORE_REQUIRED <= set(keys.defs)


def test_key_classification_covers_every_key(keys):
    named = READ_ONLY | BOOLS | UINTS | MEASURAND_LISTS | {"ConnectorPhaseRotation", "AuthorizationKey"} | SECURITY_KEYS
    assert set(keys.defs) == named


@pytest.mark.parametrize("key", sorted(READ_ONLY))
def test_read_only_keys_are_rejected_and_unchanged(keys, key):
    before = keys.get(key)
    status, why = keys.change(key, before + "1" if before else "1")
    assert status == "Rejected" and "read-only" in why
    assert keys.get(key) == before
    found, _ = keys.report([key])
    assert found == [{"key": key, "readonly": True, "value": before}]


def test_read_only_values_describe_this_build(keys):
    assert keys.get("NumberOfConnectors") == "2"
    assert keys.get("ConnectorPhaseRotationMaxLength") == "3"
    assert keys.get("MeterValuesSampledDataMaxLength") == str(MAX_MEASURANDS)
    assert set(keys.get("SupportedFeatureProfiles").split(",")) >= {"Core"}


@pytest.mark.parametrize("key", sorted(BOOLS))
def test_boolean_keys(keys, key, path):
    assert keys.change(key, "false") == ("Accepted", "")
    assert keys.bool(key) is False
    assert keys.change(key, "TRUE") == ("Accepted", "")  # case-insensitive, as most CSMSs send
    assert keys.bool(key) is True
    for bad in ("yes", "1", "", "truee"):
        status, why = keys.change(key, bad)
        assert status == "Rejected" and key in why, bad
    assert keys.bool(key) is True
    keys.change(key, "false")
    keys.store.close()
    assert reopen(path).bool(key) is False


@pytest.mark.parametrize("key", sorted(UINTS))
def test_integer_keys(keys, key, path):
    assert keys.change(key, "17") == ("Accepted", "")
    assert keys.int(key) == 17
    assert keys.change(key, "0")[0] == "Accepted"
    for bad in ("-1", "1.5", "ten", "", "0x10"):
        status, why = keys.change(key, bad)
        assert status == "Rejected" and key in why, bad
    assert keys.get(key) == "0"
    keys.change(key, "42")
    keys.store.close()
    assert reopen(path).int(key) == 42


HUGE = "1" + "0" * 400  # schema-valid (a string), once stored it crashed every start (OverflowError)


@pytest.mark.parametrize("key", sorted(UINTS))
def test_integer_keys_have_a_range_and_out_of_range_is_rejected_never_stored(keys, key, path):
    """Issue 8: every whole-number key has a sane range; a value outside it is Rejected and not stored."""
    low, high = KEY_RANGES[key]
    assert keys.change(key, str(high))[0] == "Accepted"
    for bad in (str(high + 1), HUGE, "9" * 20, "+5", " 5", "1_0", "\u0665"):
        status, why = keys.change(key, bad)
        assert status == "Rejected" and key in why, bad
        assert keys.get(key) == str(high)
    assert keys.set_initial(key, HUGE) is not None  # --ocpp-config too
    keys.store.close()
    assert reopen(path).int(key) == high


def test_every_whole_number_key_has_a_range(keys):
    assert set(KEY_RANGES) == UINTS
    for key, (low, high) in KEY_RANGES.items():
        assert 0 <= low <= int(keys.defs[key].default) <= high <= 1_000_000_000, key


@pytest.mark.parametrize("key", ["HeartbeatInterval", "ConnectionTimeOut", "WebSocketPingInterval",
                                 "MinimumStatusDuration", "MeterValueSampleInterval", "ClockAlignedDataInterval",
                                 "TransactionMessageRetryInterval", "StopTransactionOnInvalidId",
                                 "MeterValuesSampledData"])
def test_a_stored_value_out_of_range_falls_back_to_the_default_and_is_logged(path, key, caplog):
    """A value an older release stored (out of range, wrong type) must not crash a start: the
    default is used, and the key and the problem are logged."""
    store = Store(path)
    bad = HUGE if key in UINTS else "maybe" if key in BOOLS else "Banana"
    store.put(NS, key, bad)
    store.close()
    with caplog.at_level("ERROR"):
        again = reopen(path)
    default = again.defs[key].default
    assert again.get(key) == default
    if key in UINTS:
        assert again.int(key) == int(default)
    assert again.load_problems and again.load_problems[0].startswith(key)
    logged = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    assert logged and "default" in logged[0] and len(logged[0]) < 300
    again.store.close()


def test_a_stored_secret_out_of_range_is_not_logged(path, caplog):
    store = Store(path)
    store.put(NS, "AuthorizationKey", "tooshort-secret")
    store.close()
    with caplog.at_level("DEBUG"):
        again = reopen(path)
    assert again.get("AuthorizationKey") == ""
    assert "tooshort-secret" not in caplog.text and "AuthorizationKey" in caplog.text
    again.store.close()


@pytest.mark.parametrize("key", sorted(MEASURAND_LISTS))
def test_measurand_list_keys(keys, key):
    assert keys.change(key, "Energy.Active.Import.Register,Current.Import,Voltage")[0] == "Accepted"
    assert keys.change(key, "")[0] == "Accepted"  # nothing to sample is allowed
    status, why = keys.change(key, "Energy.Active.Import.Register,Banana")
    assert status == "Rejected" and "Banana" in why
    too_many = ",".join(["Voltage"] * (MAX_MEASURANDS + 1))
    status, why = keys.change(key, too_many)
    assert status == "Rejected" and str(MAX_MEASURANDS) in why
    assert keys.get(key) == ""


def test_connector_phase_rotation(keys):
    assert keys.get("ConnectorPhaseRotation") == "0.RST,1.RST,2.RST"
    assert keys.change("ConnectorPhaseRotation", "0.NotApplicable,1.RTS,2.Unknown")[0] == "Accepted"
    for bad in ("1.XYZ", "x.RST", "1RST"):
        assert keys.change("ConnectorPhaseRotation", bad)[0] == "Rejected", bad


@pytest.mark.parametrize("key", ["NoSuchKey", "heartbeatintervals", "", "LocalAuthListEnabledd"])
def test_unknown_keys_are_not_supported(keys, key):
    status, _ = keys.change(key, "1")
    assert status == "NotSupported"
    found, unknown = keys.report([key])
    assert found == [] and unknown == [key]


def test_authorization_key_is_write_only(keys, path):
    assert keys.change("AuthorizationKey", "short")[0] == "Rejected"
    assert keys.change("AuthorizationKey", "0123456789abcdef")[0] == "Accepted"
    found, unknown = keys.report(None)
    assert "AuthorizationKey" not in [f["key"] for f in found]
    assert keys.report(["AuthorizationKey"]) == ([], ["AuthorizationKey"])
    keys.store.close()
    assert reopen(path).get("AuthorizationKey") == "0123456789abcdef"  # kept for the next connection


def test_get_configuration_without_keys_reports_every_readable_key(keys):
    found, unknown = keys.report(None)
    assert unknown == []
    assert {f["key"] for f in found} == set(keys.defs) - {"AuthorizationKey"}
    for f in found:
        assert f["readonly"] == (f["key"] in READ_ONLY)
        assert isinstance(f["value"], str) and len(f["value"]) <= 500


def test_report_keeps_the_requested_order_and_splits_unknown(keys):
    found, unknown = keys.report(["MeterValueSampleInterval", "Nope", "HeartbeatInterval"])
    assert [f["key"] for f in found] == ["MeterValueSampleInterval", "HeartbeatInterval"]
    assert unknown == ["Nope"]


def test_values_survive_reopening_the_store(keys, path):
    assert keys.change("HeartbeatInterval", "42")[0] == "Accepted"
    assert keys.change("MeterValuesSampledData", "Voltage")[0] == "Accepted"
    assert keys.change("LocalPreAuthorize", "true")[0] == "Accepted"
    assert keys.change("HeartbeatInterval", "x")[0] == "Rejected"  # a rejected value is not stored
    keys.store.close()
    again = reopen(path)
    assert again.get("HeartbeatInterval") == "42"
    assert again.get("MeterValuesSampledData") == "Voltage"
    assert again.bool("LocalPreAuthorize") is True
    assert again.get("ConnectionTimeOut") == "60"  # untouched keys keep their defaults
    again.store.close()


def test_read_only_values_are_never_taken_from_an_old_store(path):
    first = reopen(path, connectors=2)
    first.set_initial("NumberOfConnectors", "2")
    first.store.close()
    bigger = reopen(path, connectors=4)  # the station was rebuilt with 4 connectors
    assert bigger.get("NumberOfConnectors") == "4"
    assert bigger.get("ConnectorPhaseRotationMaxLength") == "5"
    bigger.store.close()


def test_set_initial_checks_values(keys):
    assert keys.set_initial("HeartbeatInterval", "abc") == "HeartbeatInterval: must be a whole number"
    assert keys.set_initial("Nope", "1") == "Nope: not a configuration key of this station"
    assert keys.set_initial("heartbeatinterval", "77") is None  # CiString, stored under its own name
    assert keys.get("HeartbeatInterval") == "77"


def test_set_initial_refuses_another_value_for_a_read_only_key(keys, path):
    """A read-only key describes the station: --ocpp-config may repeat its value, never change it."""
    assert keys.set_initial("NumberOfConnectors", "2") is None
    problem = keys.set_initial("NumberOfConnectors", "5")
    assert problem is not None and "read-only" in problem
    assert keys.get("NumberOfConnectors") == "2"


def test_security_profile_is_the_station_configs(path):
    """SecurityProfile has one source: station.security_profile (what the link uses). The key
    reports it; --ocpp-config cannot make it say something else, and no old store value wins."""
    store = Store(path)
    store.put("ocpp16", "SecurityProfile", "1")  # what an older release let --ocpp-config store
    keys = ConfigurationKeys(store, 1, security_profile=0)
    assert keys.get("SecurityProfile") == "0"
    problem = keys.set_initial("SecurityProfile", "1")
    assert problem is not None and "station.security_profile" in problem
    assert keys.report(["SecurityProfile"])[0] == [{"key": "SecurityProfile", "readonly": True, "value": "0"}]
    assert keys.set_initial("SecurityProfile", "0") is None
    store.close()
    again = ConfigurationKeys(Store(path), 1, security_profile=1)
    assert again.report(["SecurityProfile"])[0][0]["value"] == "1"
    again.store.close()


@pytest.mark.parametrize("asked", ["ConnectionTimeout", "connectiontimeout", "CONNECTIONTIMEOUT"])
def test_key_names_are_case_insensitive(keys, asked):
    """1.6 keys are CiString50Type: ConnectionTimeout finds ConnectionTimeOut; the answer names the key
    as defined."""
    assert keys.change(asked, "33") == ("Accepted", "")
    assert keys.get("ConnectionTimeOut") == "33"
    found, unknown = keys.report([asked])
    assert found == [{"key": "ConnectionTimeOut", "readonly": False, "value": "33"}] and unknown == []
    status, why = keys.change("numberofconnectors", "1")
    assert status == "Rejected" and "NumberOfConnectors" in why  # a read-only key, found case-insensitively


def test_case_insensitive_change_is_stored_under_the_defined_name(keys, path):
    assert keys.change("heartbeatINTERVAL", "99")[0] == "Accepted"
    keys.store.close()
    assert reopen(path).get("HeartbeatInterval") == "99"


def test_a_corrupt_stored_number_falls_back_to_the_default(keys, path):
    keys.store.put("ocpp16", "HeartbeatInterval", "garbage")
    keys.store.close()
    again = reopen(path)
    assert again.int("HeartbeatInterval") == 300
    again.store.close()


def test_long_values_are_cut_to_500_characters_in_reports(keys):
    keys.values["ConnectorPhaseRotation"] = ",".join(f"{i}.RST" for i in range(200))
    found, _ = keys.report(["ConnectorPhaseRotation"])
    assert len(found[0]["value"]) == 500
