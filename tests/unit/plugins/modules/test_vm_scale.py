"""vm_scale against libvirt's test driver (test:///default): it implements setVcpusFlags,
setMemoryFlags (LIVE and CONFIG separately) and memoryStats, so the real libvirt calls run."""
import pytest

from ansible.module_utils import basic

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain_xml
from ansible_collections.kvmfleet.iaas.plugins.modules import vm, vm_scale

libvirt = pytest.importorskip("libvirt")

URI = "test:///default"
VM = dict(name="web1", vcpus=2, vcpus_max=4, memory_mb=512, memory_max_mb=2048, disk_gb=1, pool="default-pool",
          uri=URI, virt_type="qemu", serial="pty", stop_timeout=0)
SCALE = dict(name="web1", uri=URI, wait=0.5, stop_timeout=0)


@pytest.fixture
def web1(conn, run_module):
    assert run_module(vm, VM)["changed"] is True
    return conn.lookupByName("web1")


def sizes(dom):
    info = parse_domain_xml(dom.XMLDesc(2))
    live = dom.isActive()
    return dict(vcpus=info["vcpus"], vcpus_max=info["vcpus_max"], memory_mb=info["memory_mb"],
                memory_max_mb=info["memory_max_mb"],
                vcpus_live=dom.vcpusFlags(1) if live else None,
                balloon_mb=dom.memoryStats()["actual"] // 1024 if live else None)


def test_scales_up_live_and_in_the_definition(web1, run_module):
    result = run_module(vm_scale, dict(SCALE, vcpus=4, memory_mb=1024))
    assert result["changed"] is True and result["restarted"] is False
    assert result["steps"] == ["vcpus_live", "memory_live", "vcpus_config", "memory_config"]
    assert result["before"] == dict(vcpus=2, vcpus_max=4, memory_mb=512, memory_max_mb=2048, vcpus_live=2,
                                    balloon_mb=512)
    expected = dict(vcpus=4, vcpus_max=4, memory_mb=1024, memory_max_mb=2048, vcpus_live=4, balloon_mb=1024)
    assert result["after"] == expected and sizes(web1) == expected
    assert result["guest"] == dict(vcpus=4, balloon_mb=1024, vcpus_taken=True, memory_taken=True)
    assert result["vm"]["state"] == "running"


def test_second_identical_run_changes_nothing(web1, run_module):
    run_module(vm_scale, dict(SCALE, vcpus=3, memory_mb=768))
    again = run_module(vm_scale, dict(SCALE, vcpus=3, memory_mb=768))
    assert again["changed"] is False and again["steps"] == [] and again["before"] == again["after"]


def test_scales_down(web1, run_module):
    result = run_module(vm_scale, dict(SCALE, vcpus=1, memory_mb=256))
    assert result["changed"] is True and result["steps"][:2] == ["vcpus_live", "memory_live"]
    assert sizes(web1)["vcpus"] == 1 and sizes(web1)["vcpus_live"] == 1 and sizes(web1)["balloon_mb"] == 256


def test_resource_direction_and_step(web1, run_module):
    assert run_module(vm_scale, dict(SCALE, resource="cpu", direction="up"))["after"]["vcpus"] == 3
    assert run_module(vm_scale, dict(SCALE, resource="memory", direction="down", step="25%"))["after"]["memory_mb"] == 384
    assert run_module(vm_scale, dict(SCALE, resource="memory", direction="up"))["after"]["memory_mb"] == 640


def test_check_mode_predicts_and_changes_nothing(web1, run_module):
    before = sizes(web1)
    result = run_module(vm_scale, dict(SCALE, vcpus=4, memory_mb=1024, _ansible_check_mode=True, _ansible_diff=True))
    assert result["changed"] is True and result["after"]["vcpus"] == 4 and result["after"]["balloon_mb"] == 1024
    assert "vcpus: 2\n" in result["diff"]["before"] and "vcpus: 4\n" in result["diff"]["after"]
    assert sizes(web1) == before


def test_above_the_maximum_is_refused_naming_it(web1, run_module):
    before = sizes(web1)
    result = run_module(vm_scale, dict(SCALE, vcpus=6))
    assert result["failed"] is True and "maximum of 4 vCPUs" in result["msg"] and result["vcpus_max"] == 4
    result = run_module(vm_scale, dict(SCALE, memory_mb=4096))
    assert result["failed"] is True and "maximum of 2048 MiB" in result["msg"]
    assert sizes(web1) == before


def test_allow_restart_raises_the_maximum_and_restarts(web1, run_module):
    result = run_module(vm_scale, dict(SCALE, memory_mb=3072, allow_restart=True))
    assert result["changed"] is True and result["restarted"] is True
    assert result["steps"] == ["raise_memory_max", "memory_config", "restart"]
    assert sizes(web1)["memory_max_mb"] == 3072 and sizes(web1)["memory_mb"] == 3072
    assert web1.isActive()


def test_a_shut_off_vm_changes_its_definition_only(web1, run_module):
    web1.destroy()
    result = run_module(vm_scale, dict(SCALE, vcpus=3, memory_mb=1024))
    assert result["steps"] == ["vcpus_config", "memory_config"] and result["guest"] is None
    assert sizes(web1)["vcpus"] == 3 and sizes(web1)["memory_mb"] == 1024 and not web1.isActive()


@pytest.mark.parametrize("args, words", [
    (dict(vcpus=0), "vcpus=0: must be >= 1"),
    (dict(vcpus=-1), "vcpus=-1: must be >= 1"),
    (dict(memory_mb="1.5"), "must be a decimal integer"),
    (dict(vcpus="abc"), "must be a decimal integer"),
    (dict(resource="cpu", direction="up,down"), "up and down together"),
    (dict(name="nosuch", vcpus=2), "no VM named nosuch"),
])
def test_bad_input_is_refused_and_the_vm_stays(web1, run_module, args, words):
    before = sizes(web1)
    result = run_module(vm_scale, dict(SCALE, **args))
    assert result["failed"] is True and words in result["msg"], result
    assert sizes(web1) == before


def test_a_domain_kvmfleet_did_not_make_is_left_alone(conn, run_module):
    result = run_module(vm_scale, dict(SCALE, name="test", vcpus=1))
    assert result["failed"] is True and "not made by kvmfleet" in result["msg"]


def test_a_guest_that_keeps_its_cpu_gets_a_clear_refusal_and_keeps_its_size(web1, run_module, monkeypatch):
    real = VirtConnection.set_vcpus

    def refuse_unplug(self, dom, count, live=False, config=False):
        if live and count < dom.vcpusFlags(1):
            raise VirtError("Timed out during operation: vcpu unplug request timed out", libvirt_code=68)
        return real(self, dom, count, live=live, config=config)

    monkeypatch.setattr(VirtConnection, "set_vcpus", refuse_unplug)
    before = sizes(web1)
    result = run_module(vm_scale, dict(SCALE, vcpus=1, memory_mb=1024))
    assert result["failed"] is True
    assert "did not release the CPU" in result["msg"] and "nothing changed" in result["msg"], result
    assert result["unchanged"] is True and sizes(web1) == before


def test_a_guest_that_keeps_its_memory_gets_a_clear_refusal_and_the_balloon_goes_back(web1, run_module, monkeypatch):
    monkeypatch.setattr(VirtConnection, "balloon_actual_kib", lambda self, dom: 512 * 1024)
    result = run_module(vm_scale, dict(SCALE, memory_mb=256))
    assert result["failed"] is True and "did not release the memory" in result["msg"], result
    monkeypatch.undo()
    assert sizes(web1)["memory_mb"] == 512 and sizes(web1)["balloon_mb"] == 512


def test_a_refusal_after_a_done_step_puts_that_step_back(web1, run_module, monkeypatch):
    """Unplug works, the balloon shrink is refused: the vCPU comes back, nothing stays changed."""
    real = VirtConnection.balloon_actual_kib
    monkeypatch.setattr(VirtConnection, "balloon_actual_kib",
                        lambda self, dom: max(real(self, dom), 512 * 1024))
    result = run_module(vm_scale, dict(SCALE, vcpus=1, memory_mb=256))
    assert result["failed"] is True and "did not release the memory" in result["msg"], result
    assert result["undone"] == ["vcpus_live"] and result["unchanged"] is True
    monkeypatch.undo()
    assert sizes(web1)["vcpus_live"] == 2 and sizes(web1)["vcpus"] == 2


@pytest.mark.parametrize("change", [dict(vcpus=4, memory_mb=1024), dict(vcpus=1, memory_mb=256),
                                    dict(vcpus=6, allow_restart=True)])
def test_check_mode_predicts_exactly_what_the_real_run_does(web1, run_module, change):
    predicted = run_module(vm_scale, dict(SCALE, _ansible_check_mode=True, _ansible_diff=True, **change))
    done = run_module(vm_scale, dict(SCALE, _ansible_diff=True, **change))
    assert not done.get("failed"), done
    for key in ("changed", "steps", "restarted", "vm", "before", "after", "guest", "diff"):
        assert predicted[key] == done[key], key


def test_a_guest_that_has_not_taken_the_size_is_warned_about(web1, run_module, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, text, **kw: warned.append(text))
    monkeypatch.setattr(VirtConnection, "balloon_actual_kib", lambda self, dom: 512 * 1024)
    result = run_module(vm_scale, dict(SCALE, memory_mb=1024))
    assert not result.get("failed") and result["guest"]["memory_taken"] is False, result
    assert len(warned) == 1 and "has not taken the whole new size" in warned[0], warned


def test_another_tenants_vm_is_not_found_and_keeps_its_size(conn, run_module):
    assert run_module(vm, dict(VM, name="web2", tenant="acme"))["changed"] is True
    missing = run_module(vm_scale, dict(SCALE, name="web9", vcpus=3, tenant="initech"))
    refused = run_module(vm_scale, dict(SCALE, name="web2", vcpus=3, tenant="initech"))
    assert refused["failed"] is True and refused["msg"] == missing["msg"].replace("web9", "web2")
    assert "acme" not in str(refused)
    operator_vm = run_module(vm_scale, dict(SCALE, name="test", vcpus=1, tenant="initech"))
    assert operator_vm["msg"] == missing["msg"].replace("web9", "test")
    assert sizes(conn.lookupByName("web2"))["vcpus"] == 2
    scaled = run_module(vm_scale, dict(SCALE, name="web2", vcpus=3, tenant="acme"))
    assert scaled["changed"] is True and sizes(conn.lookupByName("web2"))["vcpus"] == 3
