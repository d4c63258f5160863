"""Label and field selectors: grammar, matching, metav1 selectors, field tables and kube-apiserver's error texts."""

from __future__ import annotations

import pytest

from cores.common import selectors as sel
from cores.common.selectors import SelectorError

QUALIFIED_NAME_HINT = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


# --- label selector grammar -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {"a": "b"}, True),
        ("", None, True),
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app=web", {}, False),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("env in (prod, qa)", {"env": "qa"}, True),
        ("env in (prod,qa)", {"env": "dev"}, False),
        ("env in (prod,qa)", {}, False),
        ("env notin (prod,qa)", {"env": "dev"}, True),
        ("env notin (prod,qa)", {}, True),
        ("env notin (prod,qa)", {"env": "prod"}, False),
        ("tier", {"tier": ""}, True),
        ("tier", {}, False),
        ("!tier", {}, True),
        ("!tier", {"tier": "x"}, False),
        ("  app = web ,  tier  ", {"app": "web", "tier": "1"}, True),
        ("app=web,tier", {"app": "web"}, False),
        ("app=", {"app": ""}, True),
        ("replicas>2", {"replicas": "3"}, True),
        ("replicas>2", {"replicas": "2"}, False),
        ("replicas<2", {"replicas": "1"}, True),
        ("replicas<2", {"replicas": "x"}, False),
        ("replicas<2", {}, False),
        ("example.com/role=master", {"example.com/role": "master"}, True),
        ("in=in", {"in": "in"}, True),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert sel.parse_label_selector(text).matches(labels) is expected


def test_label_selector_string_is_sorted_and_normalised() -> None:
    parsed = sel.parse_label_selector("z in (b,a), !y, a=1, m")
    assert str(parsed) == "a=1,m,!y,z in (a,b)"
    assert sel.parse_label_selector("").empty
    assert str(sel.parse_label_selector("x in ()")) == "x in ()"
    assert sel.parse_label_selector("x in (,)").requirements[0].values == ("",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app:monolith", 'unable to parse requirement: <nil>: Invalid value: "app:monolith": ' + QUALIFIED_NAME_HINT),
        ("a in", "unable to parse requirement: found '' expected: '('"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a=(", "unable to parse requirement: found '(', expected: identifier"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("a >x", "unable to parse requirement: values[0]: Invalid value: \"x\": "
                 "for 'Gt', 'Lt' operators, the value must be an integer"),
    ],
)
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as raised:
        sel.parse_label_selector(text)
    assert str(raised.value) == message


def test_label_selector_bad_value_and_bad_prefix() -> None:
    with pytest.raises(SelectorError, match=r'^unable to parse requirement: values\[0\]\[a\]: Invalid value: "Foo_": a valid label'):
        sel.parse_label_selector("a=Foo_")
    with pytest.raises(SelectorError, match="prefix part a lowercase RFC 1123 subdomain"):
        sel.parse_label_selector("app.kubernetes_io/name=x")
    with pytest.raises(SelectorError, match="a qualified name must consist"):
        sel.parse_label_selector("a/b/c=d")
    with pytest.raises(SelectorError, match="name part must be no more than 63 characters"):
        sel.parse_label_selector("a" * 64)


# --- metav1.LabelSelector ------------------------------------------------------------------------


def test_label_selector_from_dict() -> None:
    selector = sel.label_selector_from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "track", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    })
    assert selector.matches({"app": "web", "tier": "fe", "track": "x"})
    assert not selector.matches({"app": "web", "tier": "fe", "track": "x", "legacy": "1"})
    assert not selector.matches({"app": "web", "tier": "fe", "env": "dev", "track": "x"})
    assert not selector.matches({"app": "web", "tier": "mid", "track": "x"})


def test_label_selector_from_dict_empty_and_nil() -> None:
    assert sel.label_selector_from_dict({}).matches({"any": "thing"})
    assert sel.label_selector_from_dict({}).empty
    nothing = sel.label_selector_from_dict(None)
    assert not nothing.matches({}) and not nothing.empty


def test_label_selector_from_dict_errors() -> None:
    with pytest.raises(SelectorError, match='^"Has" is not a valid label selector operator$'):
        sel.label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Has"}]})
    with pytest.raises(SelectorError) as raised:
        sel.label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    assert str(raised.value) == "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    with pytest.raises(SelectorError, match="values set must be empty for exists"):
        sel.label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    with pytest.raises(SelectorError, match=r'^key: Invalid value: "bad key"'):
        sel.label_selector_from_dict({"matchLabels": {"bad key": "x"}})


def test_new_requirement_aggregates_errors() -> None:
    with pytest.raises(SelectorError) as raised:
        sel.new_requirement("-a", sel.EQUALS, ("x", "y"))
    assert str(raised.value).startswith("[key: Invalid value: \"-a\"")
    assert "exact-match compatibility requires one single value" in str(raised.value)
    with pytest.raises(SelectorError, match="Unsupported value"):
        sel.new_requirement("a", "like", ("x",))
    with pytest.raises(SelectorError, match="exactly one value is required"):
        sel.new_requirement("a", sel.GREATER_THAN, ())


def test_label_selector_from_set() -> None:
    selector = sel.label_selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"}) and not selector.matches({"a": "1"})
    assert sel.label_selector_from_set(None).matches({})


# --- field selectors -----------------------------------------------------------------------------

POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "edge-1", "restartPolicy": "Always", "hostNetwork": True},
    "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}]},
}


def test_field_selector_matches_pod() -> None:
    assert sel.parse_field_selector_for("pods", "spec.nodeName=edge-1").matches(POD)
    assert sel.parse_field_selector_for("pods", "spec.nodeName==edge-1,status.phase!=Pending").matches(POD)
    assert not sel.parse_field_selector_for("pods", "spec.nodeName!=edge-1").matches(POD)
    assert sel.parse_field_selector_for("pods", "spec.hostNetwork=true").matches(POD)
    assert sel.parse_field_selector_for("pods", "spec.hostNetwork=false").matches({"spec": {}})
    assert sel.parse_field_selector_for("pods", "status.podIP=10.0.0.7").matches(POD)
    assert sel.parse_field_selector_for("pods", "spec.nodeName=").matches({"spec": {}})
    assert sel.parse_field_selector_for("pods", "").matches(POD)
    assert sel.parse_field_selector_for("pods", "").empty


def test_field_selector_spec_host_alias() -> None:
    parsed = sel.parse_field_selector_for("pods", "spec.host=edge-1")
    assert str(parsed) == "spec.nodeName=edge-1" and parsed.matches(POD)


def test_field_selector_unknown_fields() -> None:
    with pytest.raises(SelectorError) as raised:
        sel.parse_field_selector_for("configmaps", "spec.foo=1")
    assert str(raised.value) == '"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"'
    with pytest.raises(SelectorError, match="^field label not supported: spec.foo$"):
        sel.parse_field_selector_for("pods", "spec.foo=1")
    with pytest.raises(SelectorError, match="^field label not supported: metadata.namespace$"):
        sel.parse_field_selector_for("nodes", "metadata.namespace=")
    # kube-apiserver does not trim: the field name keeps its space.
    with pytest.raises(SelectorError, match='^"metadata.name " is not a known'):
        sel.parse_field_selector("metadata.name =x", sel.DEFAULT_FIELD_SELECTORS)


def test_field_selector_syntax_errors_and_escapes() -> None:
    with pytest.raises(SelectorError, match="^invalid selector: 'a'; can't understand 'a'$"):
        sel.parse_field_selector("a", ("a",))
    with pytest.raises(SelectorError, match=r"invalid escape sequence: \\x"):
        sel.parse_field_selector("a=\\x", ("a",))
    with pytest.raises(SelectorError, match="unescaped character in value: 61"):
        sel.parse_field_selector("a==b=c", ("a",))
    with pytest.raises(SelectorError, match=r"invalid escape sequence: \\$"):
        sel.parse_field_selector("a=b\\", ("a",))
    escaped = sel.parse_field_selector("a=x\\,y\\=z\\\\,b!=", ("a", "b"))
    assert escaped.matches_fields({"a": "x,y=z\\", "b": "set"})
    assert str(escaped) == "a=x\\,y\\=z\\\\,b!="
    assert sel.parse_field_selector("a=1,,", ("a",)).matches_fields({"a": "1"})


def test_field_selectors_table() -> None:
    for plural, fields in sel.FIELD_SELECTORS.items():
        assert "metadata.name" in fields, plural
    assert "spec.unschedulable" in sel.FIELD_SELECTORS["nodes"]
    assert {"involvedObject.name", "reason", "reportingComponent", "source", "type"} <= set(sel.FIELD_SELECTORS["events"])
    assert "type" in sel.FIELD_SELECTORS["secrets"]
    assert "status.phase" in sel.FIELD_SELECTORS["namespaces"]
    assert sel.allowed_fields("widgets") == sel.DEFAULT_FIELD_SELECTORS


def test_selector_fields() -> None:
    fields = sel.selector_fields(POD, "pods")
    assert fields["spec.nodeName"] == "edge-1"
    assert fields["spec.hostNetwork"] == "true"
    assert fields["status.podIP"] == "10.0.0.7"
    assert fields["spec.schedulerName"] == ""
    assert fields["metadata.namespace"] == "default"
    node = sel.selector_fields({"metadata": {"name": "n1"}, "spec": {}}, "nodes")
    assert node == {"metadata.name": "n1", "spec.unschedulable": "false"}
    assert sel.selector_fields({"metadata": {"name": "x"}}, "clusterwidgets")["metadata.namespace"] == ""
    event = {"metadata": {"name": "e", "namespace": "ns"}, "involvedObject": {"kind": "Pod", "name": "p"},
             "reportingComponent": "kubelet", "source": {}, "type": "Normal"}
    event_fields = sel.selector_fields(event, "events")
    assert event_fields["source"] == "kubelet" and event_fields["involvedObject.kind"] == "Pod"
    event["source"] = {"component": "edged"}
    assert sel.selector_fields(event, "events")["source"] == "edged"
    selector = sel.parse_field_selector_for("events", "involvedObject.kind=Pod,type!=Warning")
    assert selector.matches_fields(event_fields) and selector.matches(event)


def test_field_value() -> None:
    obj = {"spec": {"replicas": 3, "paused": False, "template": {"x": 1}}, "a": "b"}
    assert sel.field_value(obj, "spec.replicas") == "3"
    assert sel.field_value(obj, "spec.paused") == "false"
    assert sel.field_value(obj, "spec.template") == ""
    assert sel.field_value(obj, "a.b") == ""
    assert sel.field_value(obj, "missing.path") == ""


def test_name_rules() -> None:
    assert sel.is_dns1123_label("my-name") == []
    assert sel.is_dns1123_label("a.b") == ["must not contain dots"]
    assert sel.is_dns1123_subdomain("a.b") == []
    assert sel.is_dns1123_subdomain("x" * 254)[0] == "must be no more than 253 characters"
    assert sel.is_qualified_name("example.com/MyName") == []
    assert sel.is_qualified_name("/a") == ["prefix part must be non-empty"]
    assert sel.is_valid_label_value("") == []
    assert sel.go_quote('a"b\n\x01é') == '"a\\"b\\n\\x01é"'
