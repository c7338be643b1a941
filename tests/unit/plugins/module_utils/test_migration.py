import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import migration as mg
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError


def plan(**options):
    return mg.plan_migration(options)


# ---- destination URI

@pytest.mark.parametrize("uri", ["qemu+ssh://root@10.0.0.12/system", "qemu+tls://node2.example/system"])
def test_secure_transports_accepted(uri):
    assert mg.check_destination_uri(uri) == uri


def test_tcp_needs_the_inventory_to_ask_for_it():
    uri = "qemu+tcp://10.0.0.12/system"
    with pytest.raises(ValidationError, match="plain TCP"):
        mg.check_destination_uri(uri)
    assert mg.check_destination_uri(uri, allow_insecure=True) == uri


@pytest.mark.parametrize("uri,match", [
    ("qemu:///system", "names no host"),
    ("qemu+unix://x/system", "transport must be"),
    ("qemu+ssh://root@10.0.0.12/session", "system instance"),
    ("", "required"),
])
def test_bad_destination_uris(uri, match):
    with pytest.raises(ValidationError, match=match):
        mg.check_destination_uri(uri)


# ---- flags and parameters

def test_defaults_live_p2p_persistent_shared():
    p = plan()
    assert p.flags == ("PEER2PEER", "ABORT_ON_ERROR", "LIVE", "PERSIST_DEST")
    assert p.params == {} and p.undefine_source is True and p.offline is False
    assert p.timeout is None and p.postcopy is False and p.max_downtime_ms is None


def test_unsafe_only_with_a_reason():
    p = plan(unsafe_reason="bind mount of one directory stands in for NFS")
    assert "UNSAFE" in p.flags and p.unsafe_reason.startswith("bind")
    with pytest.raises(ValidationError, match="say why"):
        plan(unsafe_reason="  ")
    with pytest.raises(ValidationError, match="only applies to storage=shared"):
        plan(unsafe_reason="x", storage="copy_all")


@pytest.mark.parametrize("storage,flag", [("copy_all", "NON_SHARED_DISK"), ("copy_incremental", "NON_SHARED_INC")])
def test_storage_copy_modes(storage, flag):
    p = plan(storage=storage)
    assert flag in p.flags and "UNSAFE" not in p.flags


def test_tuning_options_map_to_named_params():
    p = plan(bandwidth=50, max_downtime=200, auto_converge=True, parallel_connections=4, live=False,
             persistent=False, undefine_source=False)
    assert "LIVE" not in p.flags and "PERSIST_DEST" not in p.flags
    assert {"AUTO_CONVERGE", "PARALLEL"} <= set(p.flags)
    assert p.params == {"BANDWIDTH": 50, "PARALLEL_CONNECTIONS": 4}
    assert p.max_downtime_ms == 200


def test_compression():
    p = plan(compression="xbzrle")
    assert "COMPRESSED" in p.flags and p.params == {"COMPRESSION": "xbzrle"}
    assert "COMPRESSED" not in plan(compression="none").flags
    with pytest.raises(ValidationError, match="parallel"):
        plan(compression="mt", parallel_connections=2)
    with pytest.raises(ValidationError, match="compression must be"):
        plan(compression="zstd")


def test_post_copy_defaults_to_after_the_first_pass():
    p = plan(post_copy=True, bandwidth=10)
    assert "POSTCOPY" in p.flags and p.postcopy
    assert p.postcopy_after_iterations == 1 and p.postcopy_after_seconds is None
    assert p.params == {"BANDWIDTH": 10, "BANDWIDTH_POSTCOPY": 10}


def test_post_copy_triggers():
    p = plan(post_copy=True, post_copy_after_seconds=5)
    assert p.postcopy_after_seconds == 5.0 and p.postcopy_after_iterations is None
    p = plan(post_copy=True, post_copy_after_iterations=3)
    assert p.postcopy_after_iterations == 3
    with pytest.raises(ValidationError, match="need post_copy"):
        plan(post_copy_after_seconds=5)


def test_timeout_actions():
    p = plan(migration_timeout=30)
    assert p.timeout == 30.0 and p.timeout_action == "abort" and "POSTCOPY" not in p.flags
    p = plan(migration_timeout=30, timeout_action="postcopy")
    assert p.timeout_action == "postcopy" and "POSTCOPY" in p.flags and p.postcopy
    assert p.postcopy_after_iterations is None  # only the timeout switches
    with pytest.raises(ValidationError, match="needs migration_timeout"):
        plan(timeout_action="postcopy")
    with pytest.raises(ValidationError, match="timeout_action must be"):
        plan(timeout_action="wait")


@pytest.mark.parametrize("options,match", [
    (dict(bandwidth=0), "bandwidth must be > 0"),
    (dict(bandwidth=-5), "bandwidth must be > 0"),
    (dict(bandwidth=True), "integer"),
    (dict(max_downtime=1.5), "integer"),
    (dict(migration_timeout=0), "> 0"),
    (dict(parallel_connections=0), "> 0"),
    (dict(storage="nfs"), "storage must be"),
    (dict(persistent=False), "defined nowhere"),
    (dict(post_copy=True, live=False), "live"),
])
def test_bad_options(options, match):
    with pytest.raises(ValidationError, match=match):
        plan(**options)


def test_offline_moves_only_the_definition():
    p = mg.plan_migration({}, active=False)
    assert p.offline and p.flags == ("PEER2PEER", "OFFLINE", "PERSIST_DEST") and p.params == {}
    with pytest.raises(ValidationError, match="bandwidth"):
        mg.plan_migration(dict(bandwidth=10), active=False)
    with pytest.raises(ValidationError, match="persistent"):
        mg.plan_migration(dict(persistent=False, undefine_source=False), active=False)


# ---- monitoring

def test_monitor_post_copy_after_iterations():
    p = plan(post_copy=True, post_copy_after_iterations=2)
    assert mg.monitor_action(p, 1.0, {"memory_iteration": 1}, False) is None
    assert mg.monitor_action(p, 2.0, {"memory_iteration": 2}, False) is None
    assert mg.monitor_action(p, 3.0, {"memory_iteration": 3}, False) == "postcopy"
    assert mg.monitor_action(p, 3.0, {"memory_iteration": 3}, True) is None
    assert mg.monitor_action(p, 3.0, {}, False) is None  # no stats yet


def test_monitor_post_copy_after_seconds():
    p = plan(post_copy=True, post_copy_after_seconds=4)
    assert mg.monitor_action(p, 3.9, {"memory_iteration": 9}, False) is None
    assert mg.monitor_action(p, 4.0, {}, False) == "postcopy"


def test_monitor_timeout():
    p = plan(migration_timeout=10)
    assert mg.monitor_action(p, 9.9, {"memory_iteration": 50}, False) is None
    assert mg.monitor_action(p, 10.0, {}, False) == "abort"
    p = plan(migration_timeout=10, timeout_action="postcopy")
    assert mg.monitor_action(p, 10.0, {}, False) == "postcopy"
    assert mg.monitor_action(p, 20.0, {}, True) is None  # after the switch nothing is aborted
    assert mg.monitor_action(plan(), 1e6, {}, False) is None


# ---- stats

def test_convert_completed_stats():
    raw = {"type": 3, "time_elapsed": 2278, "downtime": 167, "setup_time": 5, "data_processed": 96857130,
           "memory_processed": 96857130, "memory_total": 202182656, "memory_iteration": 3,
           "memory_dirty_rate": 5120, "memory_page_size": 4096, "memory_bps": 293376000,
           "memory_postcopy_requests": 0, "disk_processed": 0}
    st = mg.convert_job_stats(raw)
    assert st["total_time_ms"] == 2278 and st["downtime_ms"] == 167 and st["setup_time_ms"] == 5
    assert st["data_transferred_mib"] == 92.4 and st["data_transferred_bytes"] == 96857130
    assert st["memory_total_mib"] == 192.8 and st["memory_iterations"] == 3
    assert st["dirty_rate_mib_s"] == 20.0  # 5120 pages/s x 4 KiB
    assert st["bandwidth_mib_s"] == 279.79
    assert st["auto_converge_throttle_percent"] is None
    assert mg.convert_job_stats({})["total_time_ms"] is None


def test_progress_sample():
    s = mg.progress_sample(1.234, {"memory_iteration": 2, "memory_remaining": 1048576, "data_processed": 2097152,
                                   "memory_dirty_rate": 256, "auto_converge_throttle": 20})
    assert s == dict(elapsed_s=1.23, iteration=2, remaining_mib=1.0, transferred_mib=2.0, dirty_rate_mib_s=1.0,
                     throttle_percent=20)


# ---- decisions

@pytest.mark.parametrize("src,dst,action", [
    ("running", None, mg.MIGRATE),
    ("paused", None, mg.MIGRATE),
    ("running", "shutoff", mg.MIGRATE),
    (None, "running", mg.ALREADY_THERE),
    (None, "shutoff", mg.ALREADY_THERE),
    (None, None, mg.NOT_FOUND),
    ("shutoff", "running", mg.FINISH),
    ("shutoff", None, mg.MIGRATE_OFFLINE),
    ("crashed", None, mg.MIGRATE_OFFLINE),
])
def test_decide(src, dst, action):
    assert mg.decide(src, dst) == action


def test_same_host():
    assert mg.same_host("node1", "node1")
    assert not mg.same_host("node1", "node2")
    assert mg.same_host("a", "b", "u1", "u1")
    assert not mg.same_host(None, None)


def test_auto_converge_tuning():
    p = plan(auto_converge=True, auto_converge_initial=50, auto_converge_increment=20)
    assert "AUTO_CONVERGE" in p.flags
    assert p.params == {"AUTO_CONVERGE_INITIAL": 50, "AUTO_CONVERGE_INCREMENT": 20}
    with pytest.raises(ValidationError, match="needs auto_converge"):
        plan(auto_converge_initial=50)
    with pytest.raises(ValidationError, match="1 to 99"):
        plan(auto_converge=True, auto_converge_increment=100)


def test_thin_samples():
    samples = [(0.25 * i, {"memory_iteration": i}) for i in range(1, 10)]
    out = mg.thin_samples(samples)
    assert [s["elapsed_s"] for s in out] == [0.25, 1.25, 2.25]
    out = mg.thin_samples(samples[:6])
    assert out[-1]["elapsed_s"] == 1.5
