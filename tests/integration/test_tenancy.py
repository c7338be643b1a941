"""Tenants on the lab (issue 13): two tenants, a quota that refuses and makes nothing, and tenant B
neither seeing, scaling, moving, stopping nor deleting tenant A's VM; a tenant boots its own
submitted image, which the other can neither boot nor see; the operator sees both. One VM per tenant is booted for the whole module, to keep the lab's time."""
import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.lab

SMALL = dict(vcpus=1, memory_mb=128, disk_gb=1)
TENANCY = {
    "kvmfleet_tenants": {
        "acme": {"quota": {"vcpus": 2, "memory_mb": 256, "disk_gb": 4, "vms": 2}},
        "initech": {},
    },
    "kvmfleet_tenant_default_quota": {"vcpus": 4, "memory_mb": 1024, "disk_gb": 8, "vms": 2},
}
A_VM, B_VM = "acme-a1", "initech-b1"


def play(lab, tmp_path, playbook, **values):
    """Run ``playbook`` with the lab's tenants and ``values`` (-e key=value); the report, if written."""
    report = tmp_path / ("%s-%d.json" % (playbook, len(list(tmp_path.iterdir()))))
    args = ["-e", json.dumps(TENANCY), "-e", "report_file=%s" % report]
    for key, value in values.items():
        args += ["-e", json.dumps({key: value}) if isinstance(value, (dict, list)) else "%s=%s" % (key, value)]
    run = lab.playbook(playbook, *args)
    run.report = json.loads(report.read_text()) if run.rc == 0 and report.exists() else None
    return run


def failure(run):
    assert run.rc != 0, run
    return run.output


def domains(lab):
    """{node: set of domain names} over the lab."""
    found = {}
    for node in lab.hosts():
        proc = lab.ansible(node, "ansible.builtin.command", "virsh --quiet list --all --name")
        found[node] = set(proc.stdout.split("\n", 1)[1].split())
    return found


def everywhere(lab):
    return set().union(*domains(lab).values())


def image_store(lab):
    return lab.state / "shared" / "images"


def tenant_report(lab, tmp_path, tenant):
    run = play(lab, tmp_path, "fleet_status", tenant=tenant, sample_seconds=0)
    assert run.rc == 0, run
    return run.report


@pytest.fixture(scope="module")
def tenants(onboarded, tmp_path_factory):
    """One running VM of each tenant, deleted at the end (also when a test fails)."""
    tmp = tmp_path_factory.mktemp("tenancy")
    TENANCY["kvmfleet_quota_state_dir"] = str(tmp / "quota")     # claims of this module only
    try:
        for name, tenant in ((A_VM, "acme"), (B_VM, "initech")):
            run = play(onboarded, tmp, "create_vm", name=name, tenant=tenant, **SMALL)
            assert run.rc == 0 and run.report["state"] == "running", run
        yield onboarded
    finally:
        for name in (A_VM, B_VM, "acme-big", "acme-own-image", "initech-own-image"):
            onboarded.playbook("delete_vm", "-e", "name=%s" % name, "-e", "ignore_unreachable=true")
        shutil.rmtree(image_store(onboarded) / "tenants", ignore_errors=True)


def test_over_quota_is_refused_with_the_numbers_and_makes_nothing(tenants, tmp_path):
    before = everywhere(tenants)
    disks = {p.name for p in image_store(tenants).iterdir()}
    run = play(tenants, tmp_path, "create_vm", name="acme-big", tenant="acme", vcpus=2, memory_mb=128, disk_gb=1)
    assert "tenant acme is over its quota: vCPUs: 1 used + 2 asked > 2 allowed" in failure(run), run
    assert everywhere(tenants) == before and "acme-big" not in before
    assert {p.name for p in image_store(tenants).iterdir()} == disks
    # the quota counts the VM the facts show: a second small one fits (vms: 2), a third would not
    usage = tenant_report(tenants, tmp_path, "acme")["usage"]
    assert (usage["vms"], usage["vcpus"], usage["memory_mb"]) == (1, 1, 128), usage


def test_another_tenant_neither_sees_nor_touches_the_vm(tenants, tmp_path):
    seen = tenant_report(tenants, tmp_path, "initech")
    assert [vm["name"] for vm in seen["vms"]] == [B_VM], seen
    assert A_VM not in json.dumps(seen)
    for playbook, values in (("scale_vm", dict(vm=A_VM, vcpus=2)),
                             ("migrate_vm", dict(vm=A_VM)),
                             ("power_vm", dict(name=A_VM, state="stopped"))):
        run = play(tenants, tmp_path, playbook, tenant="initech", **values)
        out = failure(run)
        assert "VM %s does not exist" % A_VM in out, (playbook, run)
        assert "acme" not in out.replace(A_VM, ""), (playbook, run)      # the owner is never named
    deleted = play(tenants, tmp_path, "delete_vm", name=A_VM, tenant="initech")
    assert deleted.rc == 0 and deleted.report["deleted"] is False and deleted.report["changed"] is False, deleted
    # A's VM is as it was, where it was
    mine = tenant_report(tenants, tmp_path, "acme")["vms"]
    assert [(vm["name"], vm["state"], vm["vcpus"]) for vm in mine] == [(A_VM, "running", 1)], mine


def test_the_operator_sees_both_tenants(tenants, tmp_path):
    run = play(tenants, tmp_path, "fleet_status", sample_seconds=0)
    assert run.rc == 0, run
    owners = {vm["name"]: vm["tenant"] for vm in run.report["vms"]}
    assert owners.get(A_VM) == "acme" and owners.get(B_VM) == "initech", owners


def test_the_owner_stops_starts_and_scales_within_its_quota(tenants, tmp_path):
    stopped = play(tenants, tmp_path, "power_vm", name=A_VM, state="stopped", tenant="acme", stop_timeout=5)
    assert stopped.rc == 0 and stopped.report["state"] == "shutoff" and "host" not in stopped.report, stopped
    again = play(tenants, tmp_path, "power_vm", name=A_VM, state="stopped", tenant="acme")
    assert again.rc == 0 and again.report["changed"] is False, again
    started = play(tenants, tmp_path, "power_vm", name=A_VM, state="running", tenant="acme")
    assert started.rc == 0 and started.report["state"] == "running", started
    # memory: 128 MiB used of 256; 384 would ask 256 more
    over = play(tenants, tmp_path, "scale_vm", vm=A_VM, memory_mb=384, tenant="acme")
    assert "tenant acme is over its quota: MiB of memory: 128 used + 256 asked > 256 allowed" in failure(over), over
    grown = play(tenants, tmp_path, "scale_vm", vm=A_VM, vcpus=2, tenant="acme")
    assert grown.rc == 0 and grown.report["scale"]["after"]["vcpus"] == 2, grown
    assert "host" not in grown.report, grown.report


def test_a_tenant_boots_its_own_image_which_another_can_neither_boot_nor_see(tenants, tmp_path):
    source = tmp_path / "mine.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(source), "64M"], check=True)
    image = "mine.image.qcow2"
    own = image_store(tenants) / "tenants" / "initech" / image
    submitted = play(tenants, tmp_path, "submit_vm", name="initech-own-image", tenant="initech", image_src=str(source),
                     image_name=image, **SMALL)
    assert submitted.rc == 0 and own.is_file(), submitted
    assert "VM initech-own-image runs from your image %s" % image in submitted.output, submitted
    assert "initech-own-image" in everywhere(tenants)
    before = everywhere(tenants)
    disks = {p.name for p in image_store(tenants).iterdir()}
    in_pool = "/srv/kvmfleet/images/tenants/initech/%s" % image      # the nodes' kvmfleet_image_dir
    for asked in (in_pool, "tenants/initech/%s" % image, "tenants/acme/../initech/%s" % image):
        run = play(tenants, tmp_path, "create_vm", name="acme-own-image", tenant="acme", image=asked, **SMALL)
        assert "image %s: not found among tenant acme's images and the public ones" % asked in failure(run), run
    assert everywhere(tenants) == before and {p.name for p in image_store(tenants).iterdir()} == disks
    mine, theirs = tenant_report(tenants, tmp_path, "initech"), tenant_report(tenants, tmp_path, "acme")
    assert [entry["name"] for entry in mine["images"]] == [image] and mine["usage"]["images"] == 1, mine
    assert theirs["images"] == [] and image not in json.dumps(theirs), theirs
