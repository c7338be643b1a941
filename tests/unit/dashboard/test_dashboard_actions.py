"""Validation of the dashboard's forms and the ansible-playbook argument lists they become."""
import json

import pytest

from dashboard import actions
from dashboard.actions import BadRequest, playbook_argv

from dashboard_sample import SAMPLE


def one(form):
    return {k: [v] for k, v in form.items()}


GOOD_CREATE = {"name": "web2", "vcpus": "2", "memory_mb": "1024", "disk_gb": "10", "image": ""}


def test_create_argv():
    action = actions.validate_create(one(dict(GOOD_CREATE, image="base.qcow2")), SAMPLE)
    assert playbook_argv(action, ansible_playbook="/v/bin/ansible-playbook", inventory="inv.yml") == [
        "/v/bin/ansible-playbook", "kvmfleet.iaas.create_vm", "-i", "inv.yml",
        "-e", "name=web2", "-e", "vcpus=2", "-e", "memory_mb=1024", "-e", "disk_gb=10",
        "-e", "image=/srv/kvmfleet/images/base.qcow2"]


def test_create_without_image_has_no_image_var():
    argv = playbook_argv(actions.validate_create(one(GOOD_CREATE), SAMPLE))
    assert argv[:2] == ["ansible-playbook", "kvmfleet.iaas.create_vm"]
    assert not any(a.startswith("image") for a in argv)
    assert "-i" not in argv


@pytest.mark.parametrize("field, value, words", [
    ("name", "", "required"),
    ("name", "Web2", "name"),
    ("name", "web_2", "name"),
    ("name", "a;rm -rf /", "name"),
    ("name", "x" * 64, "name"),
    ("name", "3600", "dnsmasq"),
    ("name", "web1", "exists already"),
    ("vcpus", "0", ">= 1"),
    ("vcpus", "65", "<= 64"),
    ("vcpus", "1.5", "vcpus"),
    ("vcpus", "two", "vcpus"),
    ("memory_mb", "63", ">= 64"),
    ("memory_mb", "-512", "memory_mb"),
    ("disk_gb", "0", ">= 1"),
    ("disk_gb", "99999999", "<="),
    ("image", "../../etc/passwd", "not an image of the pool"),
    ("image", "/srv/kvmfleet/images/base.qcow2", "not an image of the pool"),
])
def test_create_refused(field, value, words):
    with pytest.raises(BadRequest) as err:
        actions.validate_create(one(dict(GOOD_CREATE, **{field: value})), SAMPLE)
    assert words in str(err.value)


def test_two_values_for_one_field_refused():
    form = one(GOOD_CREATE)
    form["vcpus"] = ["1", "2"]
    with pytest.raises(BadRequest, match="one value"):
        actions.validate_create(form, SAMPLE)


def test_delete_argv():
    assert playbook_argv(actions.validate_delete(one({"vm": "web1"}), SAMPLE)) == [
        "ansible-playbook", "kvmfleet.iaas.delete_vm", "-e", "name=web1"]


def test_delete_unknown_vm_refused():
    with pytest.raises(BadRequest, match="no such VM"):
        actions.validate_delete(one({"vm": "ghost"}), SAMPLE)


@pytest.mark.parametrize("resource, direction, step, tail", [
    ("cpu", "up", "", ["-e", "vm=web1", "-e", "resource=cpu", "-e", "direction=up"]),
    ("memory", "down", "", ["-e", "vm=web1", "-e", "resource=memory", "-e", "direction=down"]),
    ("memory", "up", "1G", ["-e", "vm=web1", "-e", "resource=memory", "-e", "direction=up", "-e", "step=1G"]),
    ("cpu", "up", "50%", ["-e", "vm=web1", "-e", "resource=cpu", "-e", "direction=up", "-e", "step=50%"]),
])
def test_scale_argv(resource, direction, step, tail):
    action = actions.validate_scale(one({"vm": "web1", "resource": resource, "direction": direction,
                                         "step": step}), SAMPLE)
    assert playbook_argv(action) == ["ansible-playbook", "kvmfleet.iaas.scale_vm"] + tail


@pytest.mark.parametrize("form, words", [
    ({"vm": "web1", "resource": "disk", "direction": "up"}, "resource"),
    ({"vm": "web1", "resource": "cpu", "direction": "sideways"}, "direction"),
    ({"vm": "web1", "resource": "cpu", "direction": "up,down"}, "direction"),
    ({"vm": "web1", "resource": "cpu"}, "direction: required"),
    ({"vm": "ghost", "resource": "cpu", "direction": "up"}, "no such VM"),
    ({"vm": "web1", "resource": "cpu", "direction": "up", "step": "1G"}, "step"),
    ({"vm": "web1", "resource": "memory", "direction": "up", "step": "-256"}, "step"),
    ({"vm": "web1", "resource": "memory", "direction": "up", "step": "1 -e x=y"}, "step"),
])
def test_scale_refused(form, words):
    with pytest.raises(BadRequest) as err:
        actions.validate_scale(one(form), SAMPLE)
    assert words in str(err.value)


def test_migrate_argv_with_and_without_target():
    assert playbook_argv(actions.validate_migrate(one({"vm": "web1", "target": "node2"}), SAMPLE)) == [
        "ansible-playbook", "kvmfleet.iaas.migrate_vm", "-e", "vm=web1", "-e", "target=node2"]
    assert playbook_argv(actions.validate_migrate(one({"vm": "web1", "target": ""}), SAMPLE)) == [
        "ansible-playbook", "kvmfleet.iaas.migrate_vm", "-e", "vm=web1"]


@pytest.mark.parametrize("target, words", [("node9", "not a hypervisor"), ("node1", "runs there already"),
                                           ("node2 -e x=1", "not a hypervisor")])
def test_migrate_refused(target, words):
    with pytest.raises(BadRequest, match=words):
        actions.validate_migrate(one({"vm": "web1", "target": target}), SAMPLE)


def test_evacuate_argv():
    assert playbook_argv(actions.validate_evacuate(one({"host": "node1"}), SAMPLE)) == [
        "ansible-playbook", "kvmfleet.iaas.evacuate_host", "-e", "host=node1"]
    assert playbook_argv(actions.validate_evacuate(one({"host": "node2", "maintenance": "false"}), SAMPLE)) == [
        "ansible-playbook", "kvmfleet.iaas.evacuate_host", "-e", "host=node2", "-e", "maintenance=false"]
    assert playbook_argv(actions.validate_evacuate(one({"host": "node1", "parallel": "2"}), SAMPLE))[-2:] == [
        "-e", "parallel=2"]


@pytest.mark.parametrize("form, words", [({"host": "nodeX"}, "not a hypervisor"), ({"host": ""}, "required"),
                                         ({"host": "node1", "maintenance": "maybe"}, "true or false"),
                                         ({"host": "node1", "parallel": "0"}, ">= 1")])
def test_evacuate_refused(form, words):
    with pytest.raises(BadRequest, match=words):
        actions.validate_evacuate(one(form), SAMPLE)


def test_submit_argv():
    action = actions.validate_submit("appliance1", "/state/uploads/submit-x/image/disk.qcow2",
                                     "/state/uploads/submit-x/domain_xml/vm.xml", SAMPLE, cleanup=["/state/x"])
    assert playbook_argv(action) == [
        "ansible-playbook", "kvmfleet.iaas.submit_vm", "-e", "name=appliance1",
        "-e", "image_src=/state/uploads/submit-x/image/disk.qcow2",
        "-e", "domain_xml=/state/uploads/submit-x/domain_xml/vm.xml"]
    assert action.cleanup == ("/state/x",)
    no_xml = playbook_argv(actions.validate_submit("appliance1", "/up/disk.qcow2", None, SAMPLE,
                                                   sizes={"vcpus": "2", "memory_mb": "512", "disk_gb": ""}))
    assert no_xml == ["ansible-playbook", "kvmfleet.iaas.submit_vm", "-e", "name=appliance1",
                      "-e", "image_src=/up/disk.qcow2", "-e", "vcpus=2", "-e", "memory_mb=512"]


@pytest.mark.parametrize("name, image, sizes, words", [
    ("Bad Name", "/up/x", {"vcpus": "1", "memory_mb": "256"}, "name"),
    ("web1", "/up/x", {"vcpus": "1", "memory_mb": "256"}, "exists"),
    ("ok1", None, {"vcpus": "1", "memory_mb": "256"}, "image"),
    ("ok1", "/up/x", {"vcpus": "1"}, "give both"),
    ("ok1", "/up/x", {"vcpus": "0", "memory_mb": "256"}, "vcpus"),
    ("ok1", "/up/x", {"vcpus": "1", "memory_mb": "lots"}, "memory_mb"),
])
def test_submit_refused(name, image, sizes, words):
    with pytest.raises(BadRequest, match=words):
        actions.validate_submit(name, image, None, SAMPLE, sizes=sizes)


@pytest.mark.parametrize("value", ["a b", "x=y z", "@/etc/passwd", "'quoted'", "{\"j\": 1}", "tab\there"])
def test_unusual_values_go_as_one_json_item(value):
    item = actions.extra_var_item("image", value)
    assert json.loads(item) == {"image": value}


def test_variable_names_are_checked():
    with pytest.raises(ValueError):
        actions.extra_var_item("a b", "x")
