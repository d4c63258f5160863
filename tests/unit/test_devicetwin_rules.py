"""DeviceTwin's pure rules: topics, validation, version vectors, deltas."""

from __future__ import annotations

import pytest

from cores.edge.devicetwin import twin as rules
from cores.edge.devicetwin.twin import TwinError

NOW = 1_700_000_000_000


def test_topics_are_classified_as_upstream_names_them() -> None:
    assert rules.classify("$hw/events/device/default/thermo/twin/update") == rules.Topic("/twin/update", "default/thermo", True)
    assert rules.classify("$hw/events/device/default/thermo/twin/get") == rules.Topic("/twin/get", "default/thermo", True)
    assert rules.classify("$hw/events/device/default/thermo/state/update").action == "/state/update"
    assert rules.classify("$hw/events/node/edge-1/membership/get") == rules.Topic("/membership/get", "edge-1", False)
    # what the twin publishes itself, and anything else, is not an action
    for topic in ("$hw/events/device/default/thermo/twin/update/result", "$hw/events/device/default/thermo/twin/update/delta",
                  "$hw/events/node/edge-1/membership/updated", "$hw/events/device/thermo/twin/update", "a/b"):
        assert rules.classify(topic) is None
    assert rules.decode_topic(rules.encode_topic("$hw/events/node/n/membership/get")) == "$hw/events/node/n/membership/get"


@pytest.mark.parametrize(("type_", "value", "ok"), [
    ("int", "21", True), ("int", "21.5", False), ("integer", "-3", True), ("float", "21.5", True), ("float", "abc", False),
    ("double", "1e3", True), ("boolean", "true", True), ("boolean", "yes", False), ("string", "a-b_c", True),
    ("string", "with space", False), ("weird", "1", False), ("int", "9" * 30, False),
])
def test_values_are_checked_against_type_and_pattern(type_: str, value: str, ok: bool) -> None:
    if ok:
        assert rules.check_value(type_, value, "k") == value
    else:
        with pytest.raises(TwinError) as refused:
            rules.check_value(type_, value, "k")
        assert refused.value.code == 400


def test_keys_follow_upstream_pattern() -> None:
    assert rules.check_key("temperature_1.a:b/c@d#e") == "temperature_1.a:b/c@d#e"
    for key in ("", "a b", "x" * 129, 5):
        with pytest.raises(TwinError):
            rules.check_key(key)


def twin_with(expected: str | None = None, actual: str | None = None, type_: str = "int", **versions: dict[str, int]) -> dict[str, object]:
    twin: dict[str, object] = {"optional": False, "metadata": {"type": type_}}
    if expected is not None:
        twin["expected"] = {"value": expected, "metadata": {"timestamp": 1}}
        twin["expected_version"] = versions.get("expected", {"cloud": 1, "edge": 0})
    if actual is not None:
        twin["actual"] = {"value": actual, "metadata": {"timestamp": 1}}
        twin["actual_version"] = versions.get("actual", {"cloud": 0, "edge": 1})
    return twin


def test_an_edge_update_bumps_the_edge_counter_and_syncs_only_what_changed() -> None:
    twins = {"temperature": twin_with(expected="25")}
    change = rules.apply_edge_update(twins, {"temperature": {"actual": {"value": "21"}}}, NOW)
    assert change.changed == ["temperature"]
    new = change.twins["temperature"]
    assert new["actual"] == {"value": "21", "metadata": {"timestamp": NOW}}
    assert new["actual_version"] == {"cloud": 0, "edge": 1}
    assert new["expected_version"] == {"cloud": 1, "edge": 0}  # untouched side keeps its vector
    sync = change.sync["temperature"]
    assert sync["actual"]["value"] == "21" and "expected" not in sync and sync["metadata"] == {"type": "int"}
    assert "actual_version" not in change.result["temperature"]
    assert change.document["temperature"]["last"]["expected"]["value"] == "25"
    assert twins["temperature"].get("actual") is None  # the input is never changed


def test_a_refused_update_changes_nothing() -> None:
    twins = {"temperature": twin_with(expected="25", actual="20")}
    with pytest.raises(TwinError) as refused:
        rules.apply_edge_update(twins, {"humidity": {"actual": {"value": "1"}}, "temperature": {"actual": {"value": "21.5"}}}, NOW)
    assert refused.value.code == 400 and "not int" in refused.value.reason
    assert twins == {"temperature": twin_with(expected="25", actual="20")}


def test_an_unknown_twin_is_added_as_optional_string() -> None:
    change = rules.apply_edge_update({}, {"note": {"actual": {"value": "hello"}}}, NOW)
    assert change.twins["note"]["optional"] is True and change.twins["note"]["metadata"] == {"type": "string"}


def test_only_optional_twins_can_be_deleted() -> None:
    with pytest.raises(TwinError):
        rules.apply_edge_update({"temperature": twin_with(actual="1")}, {"temperature": None}, NOW)
    optional = {**twin_with(actual="1"), "optional": True}
    change = rules.apply_edge_update({"t": optional}, {"t": None}, NOW)
    assert change.twins["t"]["metadata"] == {"type": "deleted"} and change.result["t"] is None


def test_cloud_sync_is_taken_only_when_its_edge_counter_is_not_behind() -> None:
    twins = {"t": twin_with(expected="1")}
    twins["t"]["expected_version"] = {"cloud": 2, "edge": 3}
    behind = {"t": {"expected": {"value": "5"}, "expected_version": {"cloud": 3, "edge": 2}, "metadata": {"type": "int"}}}
    change, refused = rules.apply_cloud_sync(twins, behind, NOW)
    assert refused == ["t"] and change.changed == [] and change.sync["t"]["expected"]["value"] == "1"
    level = {"t": {"expected": {"value": "5"}, "expected_version": {"cloud": 3, "edge": 3}, "metadata": {"type": "int"}}}
    change, refused = rules.apply_cloud_sync(twins, level, NOW)
    assert refused == [] and change.twins["t"]["expected"]["value"] == "5"
    assert change.twins["t"]["expected_version"] == {"cloud": 3, "edge": 3}


def test_desired_values_from_a_device_raise_the_cloud_counter_and_make_a_delta() -> None:
    model = {"spec": {"properties": [{"name": "temperature", "type": "INT"}]}}
    device = {"spec": {"properties": [{"name": "temperature", "desired": {"value": "25"}}]}}
    desired = rules.desired_of(device, model)
    assert desired == {"temperature": ("25", "int")}
    change = rules.apply_desired({}, desired, NOW)
    assert change.twins["temperature"]["expected_version"] == {"cloud": 1, "edge": 0}
    assert change.sync["temperature"]["expected"]["value"] == "25"
    delta = rules.delta("e", NOW, change.twins)
    assert delta is not None and delta["delta"] == {"temperature": "25"} and "expected_version" not in delta["twin"]["temperature"]
    # the same desired value again is no change; a new one is
    assert rules.apply_desired(change.twins, desired, NOW).changed == []
    again = rules.apply_desired(change.twins, {"temperature": ("30", "int")}, NOW)
    assert again.twins["temperature"]["expected_version"] == {"cloud": 2, "edge": 0}
    # a desired value that does not fit the model's type is left out
    assert "expected" not in rules.apply_desired({}, {"temperature": ("warm", "int")}, NOW).twins["temperature"]
    # no delta once the actual value matches
    matched = rules.apply_edge_update(again.twins, {"temperature": {"actual": {"value": "30"}}}, NOW)
    assert rules.delta("e", NOW, matched.twins) is None


def test_a_property_removed_from_the_device_is_marked_deleted() -> None:
    change = rules.apply_desired({"temperature": twin_with(expected="25")}, {}, NOW)
    assert change.twins["temperature"]["metadata"] == {"type": "deleted"}
    assert rules.without_versions(change.twins) == {}


def test_malformed_updates_are_refused_with_400() -> None:
    for payload in ([], {"twin": []}, {"event_id": 5, "twin": {}}, {"event_id": "x"}):
        with pytest.raises(TwinError) as refused:
            rules.parse_update(payload)
        assert refused.value.code == 400
    too_many = {"twin": {f"k{i}": {} for i in range(rules.MAX_TWINS_PER_UPDATE + 1)}}
    with pytest.raises(TwinError):
        rules.parse_update(too_many)
