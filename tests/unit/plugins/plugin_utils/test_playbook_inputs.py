"""Every playbook input is range-checked before anything runs (plugin_utils/playbook_inputs.py),
and the message names the value and the rule."""
import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.playbook_inputs import INPUTS, check_inputs, names

HV = ["node1", "node2"]
MO = "migrate_options"


def refused(playbook, given, host_given=None):
    with pytest.raises(ValidationError) as err:
        check_inputs(playbook, given, host_given, HV)
    return str(err.value)


@pytest.mark.parametrize("playbook, given, message", [
    ("create_vm", dict(name="web1", vcpus="0", memory_mb="128", disk_gb="1"), "vcpus='0': must be >= at least one vCPU (1)"),
    ("create_vm", dict(name="web1", vcpus="1", memory_mb="128", disk_gb=str(10 ** 9)), "disk_gb='1000000000': must be <="),
    ("create_vm", dict(name="web1", vcpus="1", memory_mb="128"), "disk_gb=None: is required"),
    ("create_vm", dict(name="web1", vcpus="1", memory_mb="128", disk_gb="1", host="node9"),
     "host node9 is not a hypervisor of the inventory (hypervisors: node1, node2)"),
    ("create_vm", dict(name="web1", vcpus="1", memory_mb="128", disk_gb="1", address_timeout="4000"),
     "address_timeout='4000': must be <= 3600"),
    ("create_vm", dict(name="web1", vcpus="1", memory_mb="128", disk_gb="1", policy="near"),
     "policy='near': must be one of anti-affinity, affinity"),
    ("delete_vm", dict(name="web1", ignore_unreachable="perhaps"), "ignore_unreachable='perhaps': must be true or false"),
    ("migrate_vm", dict(vm="web1", **{MO: {"max_downtime": 0}}), "migrate_options.max_downtime=0: must be >= 1"),
    ("migrate_vm", dict(vm="web1", **{MO: {"auto_converge": True, "auto_converge_initial": 150}}),
     "migrate_options.auto_converge_initial=150: must be <= 99"),
    ("migrate_vm", dict(vm="web1", **{MO: {"parallel_connections": "many"}}),
     "migrate_options.parallel_connections='many': must be a decimal integer"),
    ("migrate_vm", dict(vm="web1", **{MO: {"post_copy_after_seconds": -1, "post_copy": True}}),
     "migrate_options.post_copy_after_seconds=-1: must be >= 0"),
    ("migrate_vm", dict(vm="web1", **{MO: {"timeout_action": "postcopy"}}), "timeout_action=postcopy needs migration_timeout"),
    ("migrate_vm", dict(vm="web1", **{MO: {"bandwith": 100}}), "unknown migrate_options bandwith; known: auto_converge"),
    ("migrate_vm", dict(vm="web1", **{MO: "fast"}), "migrate_options='fast': must be a dict of vm_migrate options"),
    ("migrate_vm", dict(), "say which VM: -e vm=NAME [-e target=HOST]"),
    ("evacuate_host", dict(), "say which host: -e host=NODE [-e parallel=N] [-e maintenance=false]"),
    ("evacuate_host", dict(host="node1", parallel="101"), "parallel='101': must be <= 100"),
    ("evacuate_host", dict(host="node1", **{MO: {"migration_timeout": -5}}),
     "migrate_options.migration_timeout=-5: must be > 0 and <= 86400"),
    ("scale_vm", dict(vm="web1", vcpus="1000"), "vcpus='1000': must be <= 256"),
    ("scale_vm", dict(vm="web1", vcpus="0"), "vcpus='0': must be >= 1"),
    ("scale_vm", dict(vm="web1", vcpus="1.5"), "vcpus='1.5': must be a decimal integer"),
    ("scale_vm", dict(vm="web1", vcpus="2", stop_timeout="0"), "stop_timeout='0': must be > 0 and <= 3600"),
    ("scale_vm", dict(vm="web1", vcpus="2", wait="-1"), "wait='-1': must be >= 0 and <= 3600"),
    ("scale_vm", dict(vm="web1", resource="cpu", direction="up", step="0"), "step='0': must be at least 1"),
    ("scale_vm", dict(vm="web1"), "say which VM and what size"),
    ("patrol", dict(parallel="0"), "parallel='0': must be >= 1"),
    ("patrol", dict(apply="maybe"), "apply='maybe': must be true or false"),
    ("submit_vm", dict(name="web1", image_src="/i.qcow2", memory_mb="10"), "memory_mb='10': must be >= 64"),
    ("submit_vm", dict(name="web1", image_src="/i.qcow2", image_format="vmdk"), "image_format='vmdk': must be one of auto"),
    ("submit_vm", dict(name="web1", image_src="/i.qcow2", image_name="../x"), "image_name='../x': must be a file name"),
    ("submit_vm", dict(name="web1", image_src="/i.qcow2", kvmfleet_image_max_virtual_gb="0"),
     "kvmfleet_image_max_virtual_gb='0': must be >= 1"),
    ("fleet_status", dict(sample_seconds="61"), "sample_seconds='61': must be >= 0 and <= 60"),
    ("setup_node", dict(setup_ganglia="2"), "setup_ganglia='2': must be true or false"),
    ("graphs", dict(ganglia_graphs_width="10"), "ganglia_graphs_width='10': must be >= 100"),
])
def test_a_bad_value_is_refused_with_its_rule(playbook, given, message):
    assert refused(playbook, given).startswith(message)


@pytest.mark.parametrize("playbook, host_given, message", [
    ("create_vm", {"node2": {"kvmfleet_sample_seconds": "-1"}}, "kvmfleet_sample_seconds='-1': must be >= 0 and <= 60 (on node2)"),
    ("patrol", {"node1": {"kvmfleet_patrol_migration_timeout": 0}},
     "kvmfleet_patrol_migration_timeout=0: must be > 0 and <= 86400 (on node1)"),
    ("patrol", {"node1": {"kvmfleet_image_dir": "images"}}, "kvmfleet_image_dir='images': must be an absolute path (on node1)"),
])
def test_a_bad_inventory_value_of_a_hypervisor_is_refused(playbook, host_given, message):
    given = dict(name="web1", vcpus=1, memory_mb=128, disk_gb=1) if playbook == "create_vm" else {}
    assert refused(playbook, given, host_given) == message


def test_every_problem_is_named_at_once():
    message = refused("scale_vm", dict(vm="web1", vcpus="2", stop_timeout="0", wait="x", allow_restart="maybe"))
    assert message == ("allow_restart='maybe': must be true or false; stop_timeout='0': must be > 0 and <= 3600; "
                       "wait='x': must be a number")


def test_good_values_come_back_converted():
    assert check_inputs("migrate_vm", {"vm": "web1", "target": "node2", MO: {"bandwidth": "100", "post_copy": "yes"}},
                        None, HV) == {"vm": "web1", "target": "node2", MO: {"bandwidth": 100, "post_copy": True}}
    assert check_inputs("patrol", {"parallel": "3", "apply": "false"}, {"node1": {"kvmfleet_patrol_sample_seconds": "3"}},
                        HV) == {"parallel": 3, "apply": False}
    assert check_inputs("create_vm", dict(name="web1", vcpus="1", memory_mb="128", disk_gb="1"), None, HV)["name"] == "web1"


def test_inventory_defaults_count_in_the_vm_request():
    given = dict(name="web1", kvmfleet_vm_defaults={"vcpus": 1, "memory_mb": 32, "disk_gb": 1})
    assert refused("create_vm", given) == "memory_mb=32: must be >= the site minimum (64)"


def test_every_rule_has_a_doc_and_every_playbook_reads_its_variables():
    for playbook, spec in INPUTS.items():
        controller, per_host = names(playbook)
        assert set(spec.get("vars", {})) <= set(controller)
        for rule in list(spec.get("vars", {}).values()) + list(spec.get("host_vars", {}).values()):
            assert rule is dict or getattr(rule, "doc", None), (playbook, rule)


TENANTS = {"kvmfleet_tenants": {"acme": {"quota": {"vms": 2}}, "initech": None}}


@pytest.mark.parametrize("given, message", [
    (dict(TENANTS, tenant="globex"), "tenant='globex': no such tenant (declare it in kvmfleet_tenants)"),
    (dict(tenant="acme"), "tenant='acme': no such tenant (declare it in kvmfleet_tenants)"),   # none declared
    (dict(TENANTS, tenant="Acme"), "tenant='Acme': must be lowercase"),
    (dict(TENANTS, tenant="ac_me"), "tenant='ac_me': must be an RFC 1123 hostname label"),
    (dict(TENANTS, tenant=""), "tenant='': must be a tenant's name; leave it out for the operator's view"),
    (dict(tenant="acme", kvmfleet_tenants={"acme": {"quota": {"cpus": 4}}}),
     "kvmfleet_tenants.acme.quota: unknown quota key cpus (known: vcpus,"),
    (dict(TENANTS, tenant="acme", kvmfleet_tenant_default_quota={"vms": -1}),
     "kvmfleet_tenant_default_quota.vms: must be a whole number >= 0"),
])
def test_fleet_status_refuses_an_unknown_or_bad_tenant(given, message):
    assert refused("fleet_status", given).startswith(message)


def test_fleet_status_takes_a_declared_tenant_and_without_one_ignores_the_tenants():
    assert check_inputs("fleet_status", dict(TENANTS, tenant="initech"), None, HV) == {"tenant": "initech"}
    # the operator's report does not depend on the tenants' declarations
    assert check_inputs("fleet_status", {"kvmfleet_tenants": {"Bad": 1}}, None, HV) == {}
    assert set(names("fleet_status")[0]) >= {"tenant", "kvmfleet_tenants", "kvmfleet_tenant_default_quota"}


def test_decide_documents_every_playbook_it_checks():
    import yaml
    from ansible_collections.kvmfleet.iaas.plugins.modules import decide
    documented = yaml.safe_load(decide.DOCUMENTATION)["options"]["inputs"]["choices"]
    assert documented == sorted(INPUTS)
