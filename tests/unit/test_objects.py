"""Typed views read the object in place and survive whatever an edge put in it."""

from __future__ import annotations

from cores.common.objects import NodeView, ObjectView, PodView


def test_views_read_without_copying() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}}, "spec": {"nodeName": "n1"}}
    view = PodView(pod)
    assert (view.key, view.uid, view.node_name, dict(view.labels)) == ("ns/p", "u", "n1", {"a": "b"})
    pod["spec"]["nodeName"] = "n2"
    assert view.node_name == "n2"  # a view, not a copy
    assert view.raw is pod


def test_views_of_malformed_objects_give_defaults_not_errors() -> None:
    for junk in (None, "text", [], {"metadata": "x", "spec": 3, "status": []}, {"metadata": {"name": 5, "labels": "l"}}):
        view = PodView(junk)
        assert (view.name, view.namespace, view.node_name, view.phase, dict(view.labels), view.deleting) == ("", "", "", "", {}, False)
    node = NodeView({"status": {"conditions": "Ready"}})
    assert node.conditions == [] and node.condition("Ready") == "" and not node.is_edge


def test_node_view_roles_and_conditions() -> None:
    node = NodeView({"metadata": {"name": "e1", "labels": {"node-role.kubernetes.io/edge": ""}},
                     "status": {"conditions": [{"type": "Ready", "status": "True"}, "junk"]}})
    assert node.is_edge and node.condition("Ready") == "True" and node.key == "e1"
    assert ObjectView({"kind": "Node"}).kind == "Node"
