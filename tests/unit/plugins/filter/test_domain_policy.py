"""kvmfleet.iaas.domain_policy: customer domain XML -> create_vm request fields."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kvmfleet.iaas.plugins.filter.domain_policy import FilterModule, domain_policy

POOL = "/srv/kvmfleet/images"

XML = """<domain type='kvm'>
  <name>cust1</name>
  <uuid>6c1a0d5e-8a53-4a4e-9a52-3e0d7c8b1f10</uuid>
  <memory unit='GiB'>2</memory>
  <currentMemory unit='MiB'>512</currentMemory>
  <vcpu placement='static' current='1'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/>{os_extra}</os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/cust1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    {devices}
    <interface type='bridge'>
      <mac address='52:54:00:AB:CD:EF'/>
      <source bridge='{bridge}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <graphics type='vnc' port='-1' listen='0.0.0.0'/>
    <memballoon model='virtio'/>
  </devices>
  <on_crash>restart</on_crash>
</domain>"""


def xml(devices="", os_extra="", bridge="br0"):
    return XML.format(devices=devices, os_extra=os_extra, bridge=bridge)


def test_sizes_come_out_and_everything_else_is_listed_as_dropped():
    result = domain_policy(xml(), pool_dir=POOL, bridge="br0")
    assert {k: result[k] for k in ("vcpus", "vcpus_max", "memory_mb", "memory_max_mb")} == dict(
        vcpus=1, vcpus_max=4, memory_mb=512, memory_max_mb=2048)
    assert "kernel" not in result
    for dropped in ("/domain/uuid", "/domain/features", "/domain/devices/graphics", "/domain/devices/disk",
                    "/domain/devices/interface", "/domain/devices/serial", "/domain/devices/memballoon",
                    "/domain/on_crash", "/domain/os/type/@machine"):
        assert dropped in result["ignored"], dropped
    assert len(result["ignored"]) == len(set(result["ignored"]))


def test_the_customer_disk_path_outside_the_pool_does_not_matter():
    # The XML names its disk where the customer had it; the submitted image replaces it.
    assert domain_policy(xml(), pool_dir=POOL)["vcpus"] == 1


def test_is_registered_under_its_name():
    assert FilterModule().filters()["domain_policy"] is domain_policy


@pytest.mark.parametrize("devices, words", [
    ("<hostdev mode='subsystem' type='pci'><source><address bus='0x01'/></source></hostdev>",
     "host device passthrough"),
    ("<filesystem type='mount'><source dir='/'/><target dir='host'/></filesystem>", "filesystem passthrough"),
    ("<emulator>/bin/sh</emulator>", "emulator override"),
    ("<channel type='unix'><source mode='bind' path='/run/x.sock'/>"
     "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>", "socket path"),
    ("<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4444'/></serial>", "type 'tcp' is not allowed"),
    ("<disk type='file' device='disk'><source file='/x.qcow2'/><target dev='vdb'/></disk>", "has 2 disks"),
    ("<vsock model='virtio'><cid auto='yes'/></vsock>", "vsock"),
])
def test_refused_devices_raise_the_policy_message(devices, words):
    with pytest.raises(AnsibleFilterError, match=words):
        domain_policy(xml(devices), pool_dir=POOL)


def test_a_tcp_console_is_refused():
    with pytest.raises(AnsibleFilterError, match="type 'tcp' is not allowed"):
        domain_policy(xml().replace("<serial type='pty'><target port='0'/></serial>",
                                    "<serial type='tcp'><source mode='bind' host='0.0.0.0' service='1'/></serial>"),
                      pool_dir=POOL)


def test_qemu_commandline_is_refused():
    text = xml().replace("<domain type='kvm'>",
                         "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>").replace(
        "</devices>", "</devices><qemu:commandline><qemu:arg value='-device'/></qemu:commandline>")
    with pytest.raises(AnsibleFilterError, match="qemu namespace"):
        domain_policy(text, pool_dir=POOL)


def test_only_the_given_bridge():
    with pytest.raises(AnsibleFilterError, match="bridge 'virbr0' is not one of br1"):
        domain_policy(xml(bridge="virbr0"), pool_dir=POOL, bridge="br1")
    assert domain_policy(xml(bridge="br1"), pool_dir=POOL, bridge="br1")["vcpus"] == 1


def test_kernel_boot_from_the_pool_is_carried_and_outside_refused():
    inside = "<kernel>%s/boot/vmlinuz</kernel><cmdline>console=ttyS0</cmdline>" % POOL
    result = domain_policy(xml(os_extra=inside), pool_dir=POOL)
    assert (result["kernel"], result["initrd"], result["cmdline"]) == (POOL + "/boot/vmlinuz", None, "console=ttyS0")
    with pytest.raises(AnsibleFilterError, match="outside the storage pool"):
        domain_policy(xml(os_extra="<kernel>/boot/vmlinuz</kernel>"), pool_dir=POOL)


def test_entities_and_doctypes_are_refused():
    bomb = "<!DOCTYPE d [<!ENTITY x 'y'>]>" + xml().replace("<name>cust1</name>", "<name>&x;</name>")
    with pytest.raises(AnsibleFilterError, match="DOCTYPE|not well-formed"):
        domain_policy(bomb, pool_dir=POOL)


@pytest.mark.parametrize("text, words", [
    ("not xml", "not well-formed"),
    ("<domain type='kvm'/>", "is required"),
    ("x" * (256 * 1024 + 1), "more than the 262144 allowed"),
    (None, "as text"),
])
def test_bad_input(text, words):
    with pytest.raises(AnsibleFilterError, match=words):
        domain_policy(text, pool_dir=POOL)
