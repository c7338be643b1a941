import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import poolplan
from ansible_collections.kvmfleet.iaas.plugins.modules import storage_pool

libvirt = pytest.importorskip("libvirt")

URI = "test:///default"


def args(tmp_path, **kw):
    base = dict(name="kvf-images", path=str(tmp_path), uri=URI)
    base.update(kw)
    return base


def test_check_mode_predicts_and_changes_nothing(conn, tmp_path, run_module):
    result = run_module(storage_pool, dict(args(tmp_path, autostart=True), _ansible_check_mode=True,
                                           _ansible_diff=True))
    assert result["changed"] is True
    assert result["actions"] == ["define", "create", "autostart"]
    assert result["pool"] == {"name": "kvf-images", "path": str(tmp_path), "active": True, "autostart": True}
    assert result["diff"]["before"]["defined"] is False
    assert "kvf-images" not in [p.name() for p in conn.listAllStoragePools()]


def test_create_then_second_run_is_unchanged(conn, tmp_path, run_module):
    first = run_module(storage_pool, args(tmp_path, autostart=True))
    assert first["changed"] is True
    pool = conn.storagePoolLookupByName("kvf-images")
    assert pool.isActive() and pool.autostart()
    second = run_module(storage_pool, args(tmp_path, autostart=True))
    assert second["changed"] is False and second["actions"] == []


def test_inactive_then_absent(conn, tmp_path, run_module):
    run_module(storage_pool, args(tmp_path))
    stopped = run_module(storage_pool, args(tmp_path, state="inactive"))
    assert stopped["actions"] == ["destroy"] and stopped["pool"]["active"] is False
    gone = run_module(storage_pool, dict(name="kvf-images", uri=URI, state="absent"))
    assert gone["actions"] == ["undefine"] and gone["pool"]["path"] is None
    assert "kvf-images" not in [p.name() for p in conn.listAllStoragePools()]
    assert tmp_path.exists(), "undefining a pool never deletes its directory"


def test_moving_an_active_pool_is_refused_with_the_reason(conn, tmp_path, run_module):
    run_module(storage_pool, args(tmp_path))
    other = tmp_path / "elsewhere"
    other.mkdir()
    result = run_module(storage_pool, args(tmp_path, path=str(other)))
    assert result["failed"] is True
    assert "is active at %s" % tmp_path in result["msg"] and "state=inactive" in result["msg"]


@pytest.mark.parametrize("before, params, expected", [
    ({"defined": False, "active": False, "autostart": False, "path": None},
     {"state": "present", "autostart": None, "path": "/p", "name": "x"}, ["define"]),
    ({"defined": True, "active": True, "autostart": True, "path": "/p"},
     {"state": "active", "autostart": None, "path": "/p", "name": "x"}, []),
    ({"defined": True, "active": True, "autostart": True, "path": "/p"},
     {"state": "active", "autostart": False, "path": "/p", "name": "x"}, ["noautostart"]),
    ({"defined": True, "active": True, "autostart": False, "path": "/old"},
     {"state": "inactive", "autostart": None, "path": "/p", "name": "x"}, ["destroy", "define"]),
    ({"defined": True, "active": True, "autostart": False, "path": "/p"},
     {"state": "absent", "autostart": None, "path": None, "name": "x"}, ["destroy", "undefine"]),
])
def test_plan(before, params, expected):
    assert poolplan.plan(before, params) == expected


def test_check_mode_predicts_exactly_what_the_real_run_does(conn, tmp_path, run_module):
    for request in (args(tmp_path, autostart=True), args(tmp_path, state="inactive", autostart=False),
                    dict(name="kvf-images", uri=URI, state="absent")):
        predicted = run_module(storage_pool, dict(request, _ansible_check_mode=True, _ansible_diff=True))
        done = run_module(storage_pool, dict(request, _ansible_diff=True))
        assert not done.get("failed"), done
        for key in ("changed", "actions", "pool", "diff"):
            assert predicted[key] == done[key], (request, key)
