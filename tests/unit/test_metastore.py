"""MetaManager's SQLite store: a pod's service account tokens go with it, nobody else's; every object change is logged for MetaServer's watches."""

from __future__ import annotations

from pathlib import Path

import pytest

from cores.edge.metamanager import MetaStore


def test_tokens_of_a_deleted_pod_are_forgotten_and_only_theirs(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "edge.db")
    try:
        store.put("default/serviceaccounttoken/default/uid-1/vault/600", "serviceaccounttoken", {"status": {"token": "a"}})
        store.put("default/serviceaccounttoken/robot/uid-1//3607", "serviceaccounttoken", {"status": {"token": "b"}})
        store.put("default/serviceaccounttoken/default/uid-10//3607", "serviceaccounttoken", {"status": {"token": "c"}})
        store.put("other/serviceaccounttoken/default/uid-1//3607", "serviceaccounttoken", {"status": {"token": "d"}})
        store.put("default/pod/uid-1", "pod", {"metadata": {"uid": "uid-1"}})
        store.delete_tokens_of("default/serviceaccounttoken/", "uid-1")
        assert [key for key, _ in store.of_type("serviceaccounttoken")] == [
            "default/serviceaccounttoken/default/uid-10//3607", "other/serviceaccounttoken/default/uid-1//3607"]
        assert store.get("default/pod/uid-1") is not None
        store.delete_tokens_of("default/serviceaccounttoken/", "uid_10")  # LIKE wildcards in a uid match nothing else
        assert len(store.of_type("serviceaccounttoken")) == 2
    finally:
        store.close()


def test_every_object_change_is_logged_with_a_local_revision(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "edge.db")
    try:
        first = store.put("default/configmap/a", "configmap", {"metadata": {"name": "a", "resourceVersion": "900"}})
        assert first is not None and (first.revision, first.event) == (1, "ADDED")
        assert store.put("default/configmap/a", "configmap", {"metadata": {"name": "a", "resourceVersion": "900"}}) is None
        second = store.put("default/pod/p", "pod", {"metadata": {"name": "p", "resourceVersion": "850"}})  # older cloud rv, later
        modified = store.put("default/configmap/a", "configmap", {"metadata": {"name": "a", "resourceVersion": "901"}})
        assert store.put("default/serviceaccounttoken/x/uid//600", "serviceaccounttoken", {"status": {}}) is None
        deleted = store.delete("default/pod/p")
        assert [c.revision for c in (second, modified, deleted) if c] == [2, 3, 4]
        assert deleted is not None and deleted.event == "DELETED" and '"p"' in deleted.value
        revision, rows = store.listing("configmap")
        assert revision == 4 and [(key, rev) for key, _, rev in rows] == [("default/configmap/a", 3)]
        assert [(c.event, c.key) for c in store.changes_since(1, "pod")] == [("ADDED", "default/pod/p"),
                                                                           ("DELETED", "default/pod/p")]
        assert [c.revision for c in store.changes_since(2, "configmap")] == [3]
    finally:
        store.close()


def test_a_compacted_revision_is_refused_and_the_revision_survives_a_restart(tmp_path: Path) -> None:
    from cores.edge.metamanager.store import Compacted

    store = MetaStore(tmp_path / "edge.db", event_log_limit=3)
    for n in range(6):
        store.put(f"default/configmap/c{n}", "configmap", {"metadata": {"name": f"c{n}"}})
    store.compact()
    with pytest.raises(Compacted):
        store.changes_since(2, "configmap")
    assert [c.revision for c in store.changes_since(3, "configmap")] == [4, 5, 6]
    store.close()
    again = MetaStore(tmp_path / "edge.db", event_log_limit=3)
    try:
        assert again.revision() == 6
        change = again.put("default/configmap/c9", "configmap", {})
        assert change is not None and change.revision == 7
    finally:
        again.close()


def test_objects_stored_before_the_log_existed_get_a_revision(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "old.db") as db:  # an older EdgeCore's database: meta alone
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, type TEXT NOT NULL, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('default/pod/p', 'pod', '{}'), ('default/serviceaccounttoken/t', 'serviceaccounttoken', '{}')")
    store = MetaStore(tmp_path / "old.db")
    try:
        revision, rows = store.listing("pod")
        assert revision == 1 and rows == [("default/pod/p", "{}", 1)]
    finally:
        store.close()
