import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml import domain as dx
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.policy import XmlPolicy, sanitize_domain_xml
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import DiskSpec, InterfaceSpec


@pytest.fixture
def policy(tmp_path):
    pool = tmp_path / "pool"
    (pool / "guest").mkdir(parents=True)
    for name in ("cust.qcow2", "guest/vmlinuz", "guest/initrd.img"):
        (pool / name).write_bytes(b"x")
    (tmp_path / "outside.qcow2").write_bytes(b"x")
    (pool / "escape.qcow2").symlink_to(tmp_path / "outside.qcow2")
    (tmp_path / "consoles").mkdir()
    return XmlPolicy(pool_dir=str(pool), bridges=("br0",), console_dir=str(tmp_path / "consoles"))


DEVICES = """
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{pool}/cust.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:AB:CD:EF'/>
      <source bridge='br0'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <controller type='usb' index='0' model='piix3-uhci'/>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' port='-1' listen='0.0.0.0'/>
    <memballoon model='virtio'><stats period='5'/></memballoon>
"""
CUSTOMER_XML = """<domain type='kvm'>
  <name>cust1</name>
  <uuid>6c1a0d5e-8a53-4a4e-9a52-3e0d7c8b1f10</uuid>
  <metadata><kvmfleet:instance xmlns:kvmfleet="https://kvmfleet.dev/iaas/1">
    <kvmfleet:group>stolen</kvmfleet:group></kvmfleet:instance></metadata>
  <memory unit='GiB'>2</memory>
  <currentMemory unit='MiB'>512</currentMemory>
  <vcpu placement='static' current='1'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/>{os_extra}</os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <devices>{devices}</devices>
  <seclabel type='none'/>
  {top_extra}
</domain>"""


def customer_xml(policy, devices=DEVICES, os_extra="", top_extra="", **replace):
    xml = CUSTOMER_XML.format(os_extra=os_extra.format(pool=policy.pool_dir), top_extra=top_extra,
                              devices=devices.format(pool=policy.pool_dir))
    for old, new in replace.items():
        xml = xml.replace(old.replace("__", " "), new)
    return xml


def test_clean_customer_xml_becomes_a_spec(policy):
    result = sanitize_domain_xml(customer_xml(policy), policy)
    spec = result.spec
    assert (spec.name, spec.domain_type, spec.machine) == ("cust1", "kvm", "pc-q35-7.2")
    assert (spec.vcpus, spec.vcpus_max, spec.memory_mb, spec.memory_max_mb) == (1, 4, 512, 2048)
    assert spec.disks == (DiskSpec(path=policy.pool_dir + "/cust.qcow2", target="vda", bus="virtio", format="qcow2"),)
    assert spec.interfaces == (InterfaceSpec(mac="52:54:00:ab:cd:ef", source="br0", model="virtio"),)
    assert (spec.serial, spec.guest_agent, spec.balloon, spec.balloon_period) == ("pty", True, True, 5)
    # Not carried: the customer's uuid, metadata (their claimed group), CPU mode, seclabel.
    assert (spec.uuid, spec.group, spec.cpu_mode) == (None, None, "auto")
    assert "/domain/seclabel" in result.ignored and "/domain/devices/graphics" in result.ignored
    assert "/domain/metadata" in result.ignored
    # What we build from it is our own XML, which the builder accepts.
    assert "stolen" not in dx.build_domain_xml(spec) and "0.0.0.0" not in dx.build_domain_xml(spec)


def test_direct_kernel_boot_inside_pool(policy):
    os_extra = ("<kernel>{0}/guest/vmlinuz</kernel><initrd>{0}/guest/initrd.img</initrd>"
                "<cmdline>console=ttyS0 a=&quot;b&quot;</cmdline>").format(policy.pool_dir)
    spec = sanitize_domain_xml(customer_xml(policy, os_extra=os_extra), policy).spec
    assert spec.kernel.endswith("/guest/vmlinuz") and spec.cmdline == 'console=ttyS0 a="b"'


def test_file_console_inside_console_dir(policy):
    devices = DEVICES.replace("<serial type='pty'><target port='0'/></serial>",
                              "<serial type='file'><source path='%s/c.log'/></serial>" % policy.console_dir)
    spec = sanitize_domain_xml(customer_xml(policy, devices=devices), policy).spec
    assert (spec.serial, spec.serial_path) == ("file", policy.console_dir + "/c.log")


def _with_device(snippet):
    return DEVICES + snippet


REFUSALS = [
    ("hostdev", dict(devices=_with_device("<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' "
                                          "slot='0' function='0'/></source></hostdev>")), "host device passthrough"),
    ("filesystem", dict(devices=_with_device("<filesystem type='mount'><source dir='/'/><target dir='host'/>"
                                             "</filesystem>")), "filesystem passthrough"),
    ("emulator", dict(devices=_with_device("<emulator>/tmp/evil</emulator>")), "emulator override"),
    ("block disk", dict(devices=_with_device("<disk type='block'><source dev='/dev/sda'/><target dev='vdb'/>"
                                             "</disk>")), "only file disks"),
    ("network disk", dict(devices=_with_device("<disk type='network'><source protocol='nbd' name='x'><host "
                                               "name='10.0.0.1'/></source><target dev='vdb'/></disk>")),
     "only file disks"),
    ("disk outside pool", dict(devices=_with_device("<disk type='file'><source file='/etc/shadow'/>"
                                                    "<target dev='vdb'/></disk>")), "outside the storage pool"),
    ("disk dot-dot", dict(devices=_with_device("<disk type='file'><source file='{pool}/../outside.qcow2'/>"
                                               "<target dev='vdb'/></disk>")), "outside the storage pool"),
    ("disk symlink escape", dict(devices=_with_device("<disk type='file'><source file='{pool}/escape.qcow2'/>"
                                                      "<target dev='vdb'/></disk>")), "outside the storage pool"),
    ("disk missing", dict(devices=_with_device("<disk type='file'><source file='{pool}/nope.qcow2'/>"
                                               "<target dev='vdb'/></disk>")), "does not exist"),
    ("disk lun", dict(devices=_with_device("<disk type='file' device='lun'><source file='{pool}/cust.qcow2'/>"
                                           "<target dev='sdb'/></disk>")), "device 'lun'"),
    ("backing store", dict(devices=_with_device(
        "<disk type='file'><source file='{pool}/cust.qcow2'/><backingStore type='file'><source "
        "file='/etc/shadow'/></backingStore><target dev='vdb'/></disk>")), "backing stores"),
    ("qemu commandline", dict(top_extra="<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
                                        "<qemu:arg value='-chardev'/></qemu:commandline>"), "qemu namespace"),
    ("foreign namespace", dict(top_extra="<x:thing xmlns:x='urn:x'/>"), "namespace urn:x"),
    # an attribute of another namespace on an element we keep or drop (qemu reads some, e.g. qemu:override)
    ("namespaced attribute on the domain", dict(**{"<domain type='kvm'>": "<domain type='kvm' xmlns:x='urn:x' x:hook='run'>"}),
     "namespaced attribute {urn:x}hook is not allowed"),
    ("namespaced attribute on a disk target",
     dict(**{"<target dev='vda' bus='virtio'/>": "<target dev='vda' bus='virtio' "
             "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' qemu:alias='x'/>"}),
     "namespaced attribute {http://libvirt.org/schemas/domain/qemu/1.0}alias is not allowed"),
    ("network interface", dict(**{"type='bridge'>": "type='network'>"}), "type='bridge'"),
    ("direct interface", dict(**{"<interface__type='bridge'>": "<interface type='direct'>"}), "type='bridge'"),
    ("other bridge", dict(**{"bridge='br0'": "bridge='virbr-admin'"}), "bridge 'virbr-admin' is not one of br0"),
    ("interface script", dict(**{"<model type='virtio'/>": "<model type='virtio'/><script path='/tmp/x'/>"}),
     "configures the host side"),
    ("multicast mac", dict(**{"52:54:00:AB:CD:EF": "01:00:5e:00:00:01"}), "multicast"),
    ("serial tcp", dict(**{"<serial type='pty'>": "<serial type='tcp'><source mode='bind' host='0.0.0.0' "
                                                  "service='4444'/>"}), "type 'tcp' is not allowed"),
    ("serial unix", dict(**{"<serial type='pty'>": "<serial type='unix'><source mode='bind' path='/tmp/s'/>"}),
     "type 'unix' is not allowed"),
    ("serial host device", dict(**{"<serial type='pty'>": "<serial type='dev'><source path='/dev/ttyS0'/>"}),
     "type 'dev' is not allowed"),
    ("serial file outside", dict(**{"<serial type='pty'>": "<serial type='file'><source path='/etc/cron.d/x'/>"}),
     "outside"),
    ("serial log outside", dict(**{"<target port='0'/></serial>": "<target port='0'/><log file='/root/x'/></serial>"}),
     "outside"),
    ("console udp", dict(**{"<console type='pty'>": "<console type='udp'>"}), "type 'udp' is not allowed"),
    ("channel with path", dict(**{"<channel type='unix'>": "<channel type='unix'><source mode='bind' "
                                                           "path='/var/lib/libvirt/x.sock'/>"}),
     "chosen by libvirt"),
    ("spice channel", dict(**{"<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>":
                              "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/>"}),
     "only the qemu guest agent"),
    ("parallel", dict(devices=_with_device("<parallel type='file'><source path='/tmp/p'/></parallel>")),
     "parallel"),
    ("shmem", dict(devices=_with_device("<shmem name='x'/>")), "shared memory"),
    ("unknown device", dict(devices=_with_device("<teleporter/>")), "device <teleporter>"),
    ("kernel outside pool", dict(os_extra="<kernel>/boot/vmlinuz</kernel>"), "outside the storage pool"),
    ("initrd without kernel", dict(os_extra="<initrd>{pool}/guest/initrd.img</initrd>"), "need a kernel"),
    ("loader", dict(os_extra="<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"),
     "<loader> is not allowed"),
    ("nvram", dict(os_extra="<nvram>/var/lib/libvirt/qemu/nvram/x.fd</nvram>"), "<nvram> is not allowed"),
    ("firmware", dict(**{"<os>": "<os firmware='efi'>"}), "firmware"),
    ("machine", dict(**{"pc-q35-7.2": "microvm"}), "machine 'microvm'"),
    ("arch", dict(**{"arch='x86_64'": "arch='aarch64'"}), "arch must be x86_64"),
    ("domain type", dict(**{"<domain type='kvm'>": "<domain type='xen'>"}), "domain type 'xen'"),
    ("unknown top element", dict(top_extra="<devicez/>"), "<devicez> is not allowed"),
    ("name", dict(**{"<name>cust1</name>": "<name>Cust1</name>"}), "lowercase"),
    ("memory too small", dict(**{"<memory unit='GiB'>2</memory>": "<memory unit='MiB'>32</memory>",
                                 "<currentMemory unit='MiB'>512</currentMemory>": ""}), "outside 64"),
    ("current above max", dict(**{"<currentMemory unit='MiB'>512</currentMemory>":
                                  "<currentMemory unit='GiB'>3</currentMemory>"}), "larger than memory"),
    ("vcpus", dict(**{"current='1'>4</vcpu>": "current='1'>100000</vcpu>"}), "<= 256"),
    ("lifecycle", dict(top_extra="<on_crash>coredump-destroy</on_crash>"), "destroy or restart"),
]


@pytest.mark.parametrize("kwargs, message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(policy, kwargs, message):
    xml = customer_xml(policy, **kwargs)
    with pytest.raises(ValidationError) as err:
        sanitize_domain_xml(xml, policy)
    assert message in str(err.value)


def test_namespaced_attributes_inside_metadata_are_dropped_not_refused(policy):
    xml = customer_xml(policy, **{"<kvmfleet:group>": "<kvmfleet:group xmlns:x='urn:x' x:note='ours'>"})
    assert sanitize_domain_xml(xml, policy).spec.name == "cust1"


def test_file_console_refused_without_console_dir(policy):
    devices = DEVICES.replace("<serial type='pty'><target port='0'/></serial>",
                              "<serial type='file'><source path='%s/c.log'/></serial>" % policy.console_dir)
    strict = XmlPolicy(pool_dir=policy.pool_dir)
    with pytest.raises(ValidationError, match="use type='pty'"):
        sanitize_domain_xml(customer_xml(policy, devices=devices), strict)


@pytest.mark.parametrize("xml, message", [
    ("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]>"
     "<domain type='kvm'><name>&lol2;</name></domain>", "DOCTYPE"),
    ("<?xml version='1.0'?><!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
     "<domain type='kvm'><name>&x;</name></domain>", "DOCTYPE"),
    ("<domain type='kvm'><name>a</name>", "not well-formed"),
    ("<network/>", "not <domain>"),
])
def test_hostile_documents(policy, xml, message):
    with pytest.raises(ValidationError, match=message):
        sanitize_domain_xml(xml, policy)


def test_size_limit(policy):
    xml = customer_xml(policy, top_extra="<description>%s</description>" % ("x" * 300000))
    with pytest.raises(ValidationError, match="more than the 262144 allowed"):
        sanitize_domain_xml(xml, policy)
