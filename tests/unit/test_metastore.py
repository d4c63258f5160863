"""MetaManager's SQLite store: a pod's service account tokens go with it, nobody else's."""

from __future__ import annotations

from pathlib import Path

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
