"""vm_migrate against libvirt's test driver.

The test driver cannot migrate, which makes it good at one thing: showing that a failed
migration leaves the VM running on the source with its definition. The destination is a
second, independent test driver (a node file) standing in for a qemu+ssh URI.
"""
import pytest

from ansible.module_utils import basic

from ansible_collections.kvmfleet.iaas.plugins.module_utils import migration
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import MigrationUnsafe, ValidationError, VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.migrate import MigrateOps
from ansible_collections.kvmfleet.iaas.plugins.modules import vm_migrate

try:
    import libvirt
except ImportError:
    libvirt = None

pytestmark = pytest.mark.skipif(libvirt is None, reason="libvirt-python is not installed")

DEST_URI = "qemu+ssh://root@192.0.2.12/system"


@pytest.fixture
def source(conn, define_domain):
    """define(name, start=True) on the source, test:///default."""
    return lambda name, start=True: define_domain(name, start=start, memory_mib=128)


@pytest.fixture
def destination(tmp_path, monkeypatch, domain_xml_for_driver):
    """Point the module's destination connection at a test driver built from a node file."""
    domains = []

    class FakeDestination(VirtConnection):
        def __init__(self, uri, timeout=10.0, readonly=False):
            assert uri == DEST_URI
            node = tmp_path / "node.xml"
            # domains of a test driver node file are running
            node.write_text("<node>%s</node>" % "".join(domain_xml_for_driver(name, memory_mib=128) for name in domains))
            super().__init__("test://%s" % node, timeout=timeout, readonly=readonly)
            self.opened_as = uri

        def hostname(self):
            return "dest-node"

        def host_uuid(self):
            return "00000000-0000-0000-0000-0000000000d2"

    monkeypatch.setattr(vm_migrate, "VirtConnection", FakeDestination)
    return domains


def args(**extra):
    base = {"uri": "test:///default", "name": "kvf-mig1", "destination_uri": DEST_URI, "destination": "node2"}
    base.update(extra)
    return base


def test_already_on_destination_is_ok_and_unchanged(source, destination, run_module):
    destination.append("kvf-mig1")
    result = run_module(vm_migrate, args())
    assert not result.get("failed"), result
    assert result["changed"] is False and result["action"] == "already_there"
    assert result["destination"] == "node2" and result["stats"] is None


def test_vm_nowhere_fails_clearly(source, destination, run_module):
    result = run_module(vm_migrate, args(name="kvf-nowhere"))
    assert result["failed"] and "defined neither on" in result["msg"] and "kvf-nowhere" in result["msg"]


def test_check_mode_reports_the_move_and_moves_nothing(source, destination, run_module, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, text, **kw: warned.append(text))
    source("kvf-mig1")
    result = run_module(vm_migrate, args(_ansible_check_mode=True, unsafe_reason="shared by NFS", bandwidth=50))
    assert not result.get("failed"), result
    assert result["changed"] is True and result["action"] == "migrated"
    assert "UNSAFE" in result["flags"] and "LIVE" in result["flags"]
    assert result["stats"] is None and result["unsafe_reason"] == "shared by NFS"
    assert warned == ["libvirt's shared-storage check skipped: shared by NFS"]
    conn = libvirt.open("test:///default")
    assert conn.lookupByName("kvf-mig1").isActive()
    conn.close()


def test_failed_migration_leaves_vm_running_on_source(source, destination, run_module):
    source("kvf-mig1")
    result = run_module(vm_migrate, args())
    assert result["failed"]
    assert "migration to node2 failed" in result["msg"] and "the VM is running" in result["msg"]
    assert result["source_state"] == "running" and result["aborted"] is False
    conn = libvirt.open("test:///default")
    dom = conn.lookupByName("kvf-mig1")
    assert dom.isActive() and dom.isPersistent()
    conn.close()


def test_leftover_source_definition_is_finished(source, destination, run_module):
    source("kvf-mig1", start=False)
    destination.append("kvf-mig1")
    check = run_module(vm_migrate, args(_ansible_check_mode=True))
    assert check["changed"] and check["action"] == "finished"
    result = run_module(vm_migrate, args())
    assert result["changed"] and result["action"] == "finished"
    conn = libvirt.open("test:///default")
    assert "kvf-mig1" not in conn.listDefinedDomains()
    conn.close()


def test_destination_that_is_the_source_is_refused(source, monkeypatch, run_module):
    source("kvf-mig1")

    class SameHost(VirtConnection):
        def __init__(self, uri, timeout=10.0, readonly=False):
            super().__init__("test:///default", timeout=timeout, readonly=readonly)
    monkeypatch.setattr(vm_migrate, "VirtConnection", SameHost)
    result = run_module(vm_migrate, args())
    assert result["failed"] and "is the source host" in result["msg"]


@pytest.mark.parametrize("extra,match", [
    (dict(destination_uri="qemu+tcp://192.0.2.12/system"), "plain TCP"),
    (dict(destination_uri="qemu:///system"), "names no host"),
    (dict(post_copy_after_seconds=3), "need post_copy"),
    (dict(bandwidth=0), "bandwidth must be > 0"),
    (dict(timeout_action="postcopy"), "needs migration_timeout"),
    (dict(persistent=False), "defined nowhere"),
    (dict(poll_interval=0), "poll_interval"),
])
def test_bad_options_fail_before_connecting(extra, match, monkeypatch, run_module):
    def boom(*a, **k):
        raise AssertionError("connected despite bad options")
    monkeypatch.setattr(vm_migrate.VmMigrate, "connect", boom)
    result = run_module(vm_migrate, args(**extra))
    assert result["failed"] and match in result["msg"], result


def test_tcp_allowed_when_asked(source, monkeypatch, run_module):
    seen = []

    class Unreachable(VirtConnection):
        def __init__(self, uri, timeout=10.0, readonly=False):
            seen.append(uri)
            super().__init__("test:///nonexistent-file.xml", timeout=timeout)
    monkeypatch.setattr(vm_migrate, "VirtConnection", Unreachable)
    source("kvf-mig1")
    result = run_module(vm_migrate, args(destination_uri="qemu+tcp://192.0.2.12/system",
                                         allow_insecure_transport=True))
    assert seen == ["qemu+tcp://192.0.2.12/system"]
    # the destination cannot be opened: a clear failure, the VM untouched
    assert result["failed"] and "cannot connect" in result["msg"]


class FakeSide:
    """A connection that has migrated (or failed to): what MigrateOps.migrate reads and what it undefines."""

    def __init__(self, run=None, state="running", stats=None):
        self.run, self.state, self.stats, self.undefined = run, state, stats, []

    def migrate_p2p(self, dom, uri, flags, params, **kwargs):
        return self.run

    def find_domain(self, name):
        return None if self.state is None else name

    def domain_state(self, dom):
        return self.state

    def job_stats(self, dom, completed=False):
        return self.stats

    def undefine_domain(self, dom):
        self.undefined.append(dom)


def migrate_with(src, dst):
    ops = MigrateOps(src, None, "kvf-mig1", DEST_URI, destination="node2")
    plan = migration.plan_migration(dict(migration_timeout=30), active=True)
    return ops.migrate(dst, "kvf-mig1", plan, dict(source="node1", destination="node2"))


def finished(error=None, aborted=False):
    return dict(switched_postcopy=False, samples=[(0.25, {"memory_iteration": 1})], error=error, aborted=aborted)


def test_the_source_definition_goes_only_once_the_destination_runs_the_vm():
    src = FakeSide(finished(), state="shutoff", stats={"time_elapsed": 1200, "downtime": 40})
    result = migrate_with(src, FakeSide(state="running"))
    assert src.undefined == ["kvf-mig1"] and result["stats"]["downtime_ms"] == 40
    for missing in (None, "shutoff"):
        src = FakeSide(finished(), state="shutoff")
        with pytest.raises(VirtError, match="the source definition on node1 is kept"):
            migrate_with(src, FakeSide(state=missing))
        assert src.undefined == []


def test_a_failed_or_aborted_migration_keeps_the_source_and_says_why():
    unsafe = MigrationUnsafe("Unsafe migration: Migration without shared storage is unsafe", libvirt_code=81)
    src = FakeSide(finished(error=unsafe))
    with pytest.raises(VirtError, match="say why in unsafe_reason") as failed:
        migrate_with(src, FakeSide(state=None))
    assert failed.value.details["source_state"] == "running" and src.undefined == []
    src = FakeSide(finished(error=VirtError("operation failed"), aborted=True))
    with pytest.raises(VirtError, match="did not finish within 30 s and was aborted") as aborted:
        migrate_with(src, FakeSide(state=None))
    assert "unsafe_reason" not in str(aborted.value) and src.undefined == []


@pytest.mark.parametrize("error, hinted", [
    (MigrationUnsafe("Unsafe migration: Migration without shared storage is unsafe", libvirt_code=81), True),
    (VirtError("operation failed: migration out job: unexpectedly failed", libvirt_code=1), False),
])
def test_an_unsafe_migration_says_how_to_go_on(error, hinted, source, destination, monkeypatch, run_module):
    source("kvf-mig1")
    monkeypatch.setattr(VirtConnection, "migrate_p2p", lambda self, dom, uri, *a, **kw: dict(
        elapsed=0.1, switched_postcopy=False, aborted=False, samples=[], error=error))
    result = run_module(vm_migrate, args())
    assert result["failed"] and str(error) in result["msg"]
    assert ("say why in unsafe_reason" in result["msg"]) is hinted


# --------------------------------------------------------------------------- the cloud-init seed with copied disks

SEEDED = ("<domain type='qemu'><name>kvf-mig1</name><metadata><kvmfleet:instance xmlns:kvmfleet='https://kvmfleet.dev/iaas/1'>"
          "<kvmfleet:managed-by>kvmfleet.iaas</kvmfleet:managed-by></kvmfleet:instance></metadata>"
          "<memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>"
          "<disk type='file' device='disk'><source file='/srv/img/kvf-mig1.qcow2'/><target dev='vda' bus='virtio'/></disk>"
          "<disk type='file' device='cdrom'><source file='/srv/img/kvf-mig1-seed.iso'/><target dev='sda' bus='scsi'/>"
          "<readonly/></disk></devices></domain>")


class SeedSide:
    def __init__(self, xml=SEEDED, pool="pool", volume=None):
        self.xml, self.pool, self.volume, self.uploaded = xml, pool, volume, []

    def domain_xml(self, dom, inactive=False):
        return self.xml

    def pool_for_path(self, path):
        return self.pool if path == "/srv/img" else None

    def lookup_volume(self, pool, name):
        return self.volume

    def upload_file(self, pool, name, path):
        self.uploaded.append((pool, name, path))


@pytest.mark.parametrize("storage, carried", [("copy_all", True), ("copy_incremental", True), ("shared", False)])
def test_the_seed_goes_ahead_of_a_copied_storage_migration_only(storage, carried):
    plan = migration.plan_migration(dict(storage=storage), active=True)
    ops = MigrateOps(SeedSide(), None, "kvf-mig1", DEST_URI, destination="node2")
    seed = ops.seed_to_carry("kvf-mig1", plan)
    assert seed == ("/srv/img/kvf-mig1-seed.iso" if carried else None)
    if carried:
        dst = SeedSide()
        ops.carry_seed(dst, seed, dict(destination="node2"))
        assert dst.uploaded == [("pool", "kvf-mig1-seed.iso", "/srv/img/kvf-mig1-seed.iso")]
        there = SeedSide(volume="exists")
        ops.carry_seed(there, seed, dict(destination="node2"))
        assert there.uploaded == []        # the same path already has it (a retried migration)
        with pytest.raises(ValidationError, match="node2 has no storage pool at /srv/img for the VM's cloud-init seed"):
            ops.carry_seed(SeedSide(pool=None), seed, dict(destination="node2"))
    unseeded = MigrateOps(SeedSide(xml=SEEDED.replace("kvf-mig1-seed.iso", "other.iso")), None, "kvf-mig1", DEST_URI)
    assert unseeded.seed_to_carry("kvf-mig1", plan) is None


def test_a_failed_upload_leaves_no_half_made_volume(conn, tmp_path):
    # the test driver has no virStorageVolUpload: the upload fails after the volume was made
    (tmp_path / "seed.iso").write_bytes(b"cidata")
    with VirtConnection("test:///default") as virt:
        pool = virt.lookup_pool("default-pool")
        with pytest.raises(VirtError, match="virStorageVolUpload"):
            virt.upload_file(pool, "kvf-mig1-seed.iso", str(tmp_path / "seed.iso"))
        assert virt.lookup_volume(pool, "kvf-mig1-seed.iso") is None


def test_a_tenant_cannot_move_a_vm_it_does_not_own(conn, destination, run_module):
    from ansible_collections.kvmfleet.iaas.plugins.modules import vm
    made = run_module(vm, dict(name="kvf-mig1", vcpus=1, memory_mb=128, disk_gb=1, pool="default-pool",
                               uri="test:///default", virt_type="qemu", serial="pty", tenant="acme"))
    assert made["changed"] is True
    missing = run_module(vm_migrate, args(name="kvf-nowhere", tenant="initech"))
    refused = run_module(vm_migrate, args(tenant="initech"))
    assert refused["failed"] and refused["msg"] == missing["msg"].replace("kvf-nowhere", "kvf-mig1")
    assert "acme" not in str(refused) and conn.lookupByName("kvf-mig1").isActive()
    # its owner gets past the lookup to the migration itself (which the test driver cannot do)
    owned = run_module(vm_migrate, args(tenant="acme"))
    assert owned["failed"] and "migration to node2 failed" in owned["msg"], owned["msg"]
