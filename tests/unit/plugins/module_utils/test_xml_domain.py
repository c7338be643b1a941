from dataclasses import replace

import pytest
from lxml import etree

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml import diff, metadata
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml import domain as dx
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import DiskSpec, DomainSpec, InterfaceSpec, from_vm_spec

try:
    import libvirt
except ImportError:
    libvirt = None

needs_libvirt = pytest.mark.skipif(libvirt is None, reason="libvirt-python is not installed")

MAC = "52:54:00:12:34:56"
KVM_WEB = DomainSpec(
    name="web1", vcpus=2, vcpus_max=8, memory_mb=1024, memory_max_mb=4096, domain_type="kvm",
    disks=(DiskSpec("/srv/kvmfleet/images/web1.qcow2"),), interfaces=(InterfaceSpec(MAC),),
    group="web", annotations=(("ip", "192.0.2.20"),),
)
LAB_GUEST = DomainSpec(
    name="lab1", vcpus=1, vcpus_max=2, memory_mb=256, memory_max_mb=512, domain_type="qemu", machine="pc",
    kernel="/srv/kvmfleet/images/guest/vmlinuz", initrd="/srv/kvmfleet/images/guest/initrd.img",
    cmdline="console=ttyS0 loglevel=4 kvmfleet.burn=1", disks=(DiskSpec("/srv/kvmfleet/images/lab1.qcow2", cache=None),),
    interfaces=(InterfaceSpec(MAC, source="kvmlab0"),), serial="file", serial_path="/var/log/kvmfleet/lab1.log",
    guest_agent=True, uuid="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
)
MINIMAL = DomainSpec(name="tiny", vcpus=1, memory_mb=64, serial="none", balloon=False, cpu_mode="host-passthrough")
SPECS = [KVM_WEB, LAB_GUEST, MINIMAL]


def xpath(xml, path):
    return etree.fromstring(xml.encode()).xpath(path, namespaces={"k": metadata.KVMFLEET_NS})


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_build_then_parse_round_trips(spec):
    xml = dx.build_domain_xml(spec)
    parsed = dx.parse_domain(xml)
    assert diff.diff_domain(spec, xml) == {}
    # Field by field; the maxima and the CPU mode come back resolved, the balloon period only
    # exists with a balloon.
    resolved = dict(vcpus_max=spec.effective_vcpus_max, memory_max_mb=spec.effective_memory_max_mb,
                    cpu_mode=spec.effective_cpu_mode, balloon_period=spec.balloon_period if spec.balloon else 0)
    assert parsed == replace(spec, **resolved)


def test_memory_is_balloon_maximum_and_current_in_kib():
    xml = dx.build_domain_xml(KVM_WEB)
    assert xpath(xml, "/domain/memory/text()") == [str(4096 * 1024)]
    assert xpath(xml, "/domain/memory/@unit") == ["KiB"]
    assert xpath(xml, "/domain/currentMemory/text()") == [str(1024 * 1024)]
    assert xpath(xml, "/domain/devices/memballoon/@model") == ["virtio"]
    assert xpath(xml, "/domain/devices/memballoon/stats/@period") == ["10"]
    assert xpath(xml, "/domain/maxMemory") == []


@pytest.mark.parametrize("vcpus, vcpus_max, current_attr, text", [
    (2, 8, ["2"], ["8"]),
    (4, 4, [], ["4"]),          # libvirt drops current= when equal; so do we
    (3, None, [], ["3"]),
])
def test_vcpu_element_for_hotplug(vcpus, vcpus_max, current_attr, text):
    xml = dx.build_domain_xml(DomainSpec(name="a", vcpus=vcpus, vcpus_max=vcpus_max, memory_mb=128))
    assert xpath(xml, "/domain/vcpu/@current") == current_attr
    assert xpath(xml, "/domain/vcpu/text()") == text
    assert xpath(xml, "/domain/vcpu/@placement") == ["static"]


@pytest.mark.parametrize("domain_type, cpu_mode, expected", [
    ("kvm", "auto", ["host-model"]),
    ("qemu", "auto", []),
    ("kvm", "none", []),
    ("qemu", "host-passthrough", ["host-passthrough"]),
])
def test_cpu_mode_default_depends_on_domain_type(domain_type, cpu_mode, expected):
    xml = dx.build_domain_xml(DomainSpec(name="a", vcpus=1, memory_mb=128, domain_type=domain_type, cpu_mode=cpu_mode))
    assert xpath(xml, "/domain/cpu/@mode") == expected


def test_disk_boot_versus_direct_kernel_boot():
    disk_boot = dx.build_domain_xml(KVM_WEB)
    assert xpath(disk_boot, "/domain/os/boot/@dev") == ["hd"]
    assert xpath(disk_boot, "/domain/os/kernel") == []
    kernel_boot = dx.build_domain_xml(LAB_GUEST)
    assert xpath(kernel_boot, "/domain/os/boot") == []
    assert xpath(kernel_boot, "/domain/os/kernel/text()") == [LAB_GUEST.kernel]
    assert xpath(kernel_boot, "/domain/os/initrd/text()") == [LAB_GUEST.initrd]
    assert xpath(kernel_boot, "/domain/os/type/@machine") == ["pc"]


def test_devices_disk_nic_serial_console_agent():
    xml = dx.build_domain_xml(LAB_GUEST)
    assert xpath(xml, "/domain/devices/disk/@type") == ["file"]
    assert xpath(xml, "/domain/devices/disk/driver/@type") == ["qcow2"]
    assert xpath(xml, "/domain/devices/disk/driver/@cache") == []        # cache=None leaves it out
    assert xpath(xml, "/domain/devices/disk/target/@dev") == ["vda"]
    assert xpath(xml, "/domain/devices/disk/target/@bus") == ["virtio"]
    assert xpath(xml, "/domain/devices/interface/@type") == ["bridge"]
    assert xpath(xml, "/domain/devices/interface/source/@bridge") == ["kvmlab0"]
    assert xpath(xml, "/domain/devices/interface/mac/@address") == [MAC]
    assert xpath(xml, "/domain/devices/interface/model/@type") == ["virtio"]
    assert xpath(xml, "/domain/devices/serial/@type") == ["file"]
    assert xpath(xml, "/domain/devices/serial/source/@path") == [LAB_GUEST.serial_path]
    assert xpath(xml, "/domain/devices/serial/target/@port") == ["0"]
    assert xpath(xml, "/domain/devices/console/target/@type") == ["serial"]
    assert xpath(xml, "/domain/devices/channel/target/@name") == ["org.qemu.guest_agent.0"]
    assert xpath(xml, "/domain/features/acpi") and xpath(xml, "/domain/features/apic")
    assert xpath(dx.build_domain_xml(KVM_WEB), "/domain/devices/disk/driver/@cache") == ["none"]


def test_pty_console_has_no_source():
    xml = dx.build_domain_xml(KVM_WEB)
    assert xpath(xml, "/domain/devices/serial/@type") == ["pty"]
    assert xpath(xml, "/domain/devices/serial/source") == []
    assert xpath(xml, "/domain/devices/console/@type") == ["pty"]


def test_metadata_element_and_namespace():
    xml = dx.build_domain_xml(KVM_WEB)
    assert xpath(xml, "/domain/metadata/k:instance/k:managed-by/text()") == ["kvmfleet.iaas"]
    assert xpath(xml, "/domain/metadata/k:instance/k:group/text()") == ["web"]
    assert xpath(xml, "/domain/metadata/k:instance/k:ip/text()") == ["192.0.2.20"]
    assert metadata.KVMFLEET_NS == "https://kvmfleet.dev/iaas/1"
    no_group = dx.build_domain_xml(replace(KVM_WEB, group=None))
    assert xpath(no_group, "/domain/metadata/k:instance/k:group") == []
    assert dx.parse_domain(no_group).group is None
    assert dx.parse_domain(no_group).managed is True


def test_metadata_matches_what_the_facts_read():
    info = dx.parse_domain_xml(dx.build_domain_xml(KVM_WEB))
    assert info["metadata"]["group"] == "web"
    assert (info["vcpus"], info["vcpus_max"], info["memory_mb"], info["memory_max_mb"]) == (2, 8, 1024, 4096)


def test_values_with_quotes_ampersand_and_angle_brackets_are_escaped():
    cmdline = 'console=ttyS0 msg="a & b" x=<y> \'q\''
    spec = replace(LAB_GUEST, cmdline=cmdline, serial_path="/var/log/a&b\"c'.log")
    xml = dx.build_domain_xml(spec)
    assert "a &amp; b" in xml and "&lt;y&gt;" in xml
    assert 'path="/var/log/a&amp;b&quot;c\'.log"' in xml
    parsed = dx.parse_domain(xml)
    assert parsed.cmdline == cmdline
    assert parsed.serial_path == spec.serial_path


# A domain as libvirt's qemu driver dumps it (inactive XML, libvirt 9.0), with everything it adds.
LIBVIRT_DUMP = """<domain type='kvm'>
  <name>web1</name>
  <uuid>6c1a0d5e-8a53-4a4e-9a52-3e0d7c8b1f10</uuid>
  <metadata>
    <kvmfleet:instance xmlns:kvmfleet="https://kvmfleet.dev/iaas/1">
      <kvmfleet:managed-by>kvmfleet.iaas</kvmfleet:managed-by>
      <kvmfleet:group>web</kvmfleet:group>
      <kvmfleet:ip>192.0.2.20</kvmfleet:ip>
    </kvmfleet:instance>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static' current='2'>8</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='host-model' check='partial'/>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/srv/kvmfleet/images/web1.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <interface type='bridge'>
      <mac address='52:54:00:12:34:56'/>
      <source bridge='br0'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <serial type='pty'>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <audio id='1' type='none'/>
    <memballoon model='virtio'>
      <stats period='10'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </memballoon>
  </devices>
  <seclabel type='dynamic' model='apparmor' relabel='yes'/>
  <seclabel type='dynamic' model='dac' relabel='yes'/>
</domain>
"""


def test_parse_libvirt_dump_facts():
    assert dx.domain_facts(LIBVIRT_DUMP) == dict(
        name="web1", uuid="6c1a0d5e-8a53-4a4e-9a52-3e0d7c8b1f10", managed=True, group="web",
        vcpus=2, vcpus_max=8, memory_mb=1024, memory_max_mb=4096,
        disks=[dict(target="vda", path="/srv/kvmfleet/images/web1.qcow2")], macs=[MAC])


def test_libvirt_additions_are_not_differences():
    assert diff.diff_domain(KVM_WEB, LIBVIRT_DUMP) == {}
    assert diff.diff_domain(replace(KVM_WEB, machine="pc"), LIBVIRT_DUMP) == {}


@pytest.mark.parametrize("change, field", [
    (dict(vcpus=4), "vcpus"),
    (dict(vcpus_max=16), "vcpus_max"),
    (dict(memory_mb=2048), "memory_mb"),
    (dict(memory_max_mb=8192), "memory_max_mb"),
    (dict(machine="q35"), "machine"),
    (dict(uuid="00000000-0000-0000-0000-000000000001"), "uuid"),
    (dict(disks=(DiskSpec("/srv/kvmfleet/images/other.qcow2"),)), "disks"),
    (dict(disks=(DiskSpec("/srv/kvmfleet/images/web1.qcow2", cache="writeback"),)), "disks"),
    (dict(interfaces=(InterfaceSpec("52:54:00:00:00:01"),)), "interfaces"),
    (dict(interfaces=(InterfaceSpec(MAC, source="br1"),)), "interfaces"),
    (dict(group="db"), "group"),
    (dict(annotations=()), "annotations"),
    (dict(cmdline="quiet", kernel="/k"), "cmdline"),
    (dict(serial="file", serial_path="/var/log/x.log"), "serial"),
    (dict(guest_agent=True), "guest_agent"),
    (dict(cpu_mode="host-passthrough"), "cpu_mode"),
])
def test_diff_names_the_changed_field(change, field):
    changes = diff.diff_domain(replace(KVM_WEB, **change), LIBVIRT_DUMP)
    assert field in changes
    assert changes[field]["desired"] != changes[field]["actual"]


def test_diff_reports_desired_and_actual_values():
    assert diff.diff_domain(replace(KVM_WEB, vcpus=4), LIBVIRT_DUMP) == {"vcpus": {"desired": 4, "actual": 2}}


def test_uuid_compared_case_insensitively_and_cache_none_ignored():
    spec = replace(KVM_WEB, uuid="6C1A0D5E-8A53-4A4E-9A52-3E0D7C8B1F10",
                   disks=(DiskSpec("/srv/kvmfleet/images/web1.qcow2", cache=None),))
    assert diff.diff_domain(spec, LIBVIRT_DUMP) == {}


def test_unmanaged_domain_is_reported():
    foreign = LIBVIRT_DUMP.replace("kvmfleet:instance", "other:instance").replace(
        'xmlns:kvmfleet="https://kvmfleet.dev/iaas/1"', 'xmlns:other="https://example.org/x"').replace(
        "kvmfleet:", "other:")
    parsed = dx.parse_domain(foreign)
    assert (parsed.managed, parsed.group) == (False, None)
    assert set(diff.diff_domain(KVM_WEB, foreign)) == {"managed", "group", "annotations"}


@pytest.mark.parametrize("memory, unit, mb", [("1", "GiB", 1024), ("1048576", None, 1024),
                                              ("1073741824", "b", 1024), ("2", "G", 2048), ("512", "MiB", 512)])
def test_memory_units(memory, unit, mb):
    unit_attr = " unit='%s'" % unit if unit else ""
    xml = "<domain type='kvm'><name>a</name><memory%s>%s</memory><vcpu>1</vcpu></domain>" % (unit_attr, memory)
    parsed = dx.parse_domain(xml)
    assert parsed.memory_max_mb == mb and parsed.memory_mb == mb


@pytest.mark.parametrize("changes, live, offline", [
    ({"vcpus": {}, "memory_mb": {}}, ["vcpus", "memory_mb"], []),
    ({"vcpus": {}, "vcpus_max": {}}, [], ["vcpus_max", "vcpus"]),
    ({"memory_mb": {}, "memory_max_mb": {}, "group": {}}, [], ["memory_max_mb", "group", "memory_mb"]),
])
def test_split_changes(changes, live, offline):
    assert diff.split_changes(changes) == (live, offline)


@pytest.mark.parametrize("change, field", [
    (dict(domain_type="xen"), "domain_type"),
    (dict(vcpus=0), "vcpus"),
    (dict(vcpus=True), "vcpus"),
    (dict(vcpus_max=1), "vcpus_max"),
    (dict(memory_max_mb=512), "memory_max_mb"),
    (dict(uuid="not-a-uuid"), "uuid"),
    (dict(cpu_mode="custom"), "cpu_mode"),
    (dict(cmdline="quiet"), "kernel"),
    (dict(serial="file"), "serial_path"),
    (dict(serial="tcp"), "serial"),
    (dict(serial_path="/x.log"), "serial_path"),
    (dict(on_crash="explode"), "on_crash"),
    (dict(disks=(DiskSpec("/a"), DiskSpec("/b"))), "disks"),
    (dict(interfaces=(InterfaceSpec(MAC), InterfaceSpec(MAC.upper()))), "interfaces"),
    (dict(interfaces=(InterfaceSpec(None),)), "interfaces"),
    (dict(annotations=(("group", "x"),)), "annotations"),
    (dict(annotations=(("Bad Key", "x"),)), "annotations"),
])
def test_check_spec_refuses(change, field):
    with pytest.raises(ValidationError) as err:
        dx.build_domain_xml(replace(KVM_WEB, **change))
    assert err.value.details["field"] == field


def test_pretty_reindents_and_is_stable():
    compact = "<domain type='kvm'><name>a</name><devices><disk type='file'/></devices></domain>"
    once = dx.pretty(compact)
    assert once.splitlines() == ['<domain type="kvm">', "  <name>a</name>", "  <devices>",
                                 '    <disk type="file"/>', "  </devices>", "</domain>"]
    assert dx.pretty(once) == once
    assert dx.pretty(etree.fromstring(compact)) == once


@pytest.mark.parametrize("xml, message", [
    ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "boom">]><domain type="kvm"><name>&x;</name></domain>',
     "DOCTYPE"),
    ("<domain><name>a</name>", "not well-formed"),
    ("<network><name>a</name></network>", "not a domain"),
])
def test_parse_refuses_bad_xml(xml, message):
    with pytest.raises(ValidationError, match=message):
        dx.parse_domain(xml)


def test_parse_accepts_bytes_with_encoding_declaration():
    xml = b"<?xml version='1.0' encoding='UTF-8'?>" + dx.build_domain_xml(KVM_WEB).encode()
    assert dx.parse_domain(xml).name == "web1"


def test_from_vm_spec_carries_the_request():
    vmspec = pytest.importorskip("ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec")
    vm = vmspec.VmSpec(name="web1", vcpus=2, vcpus_max=8, memory_mb=1024, memory_max_mb=4096, disk_gb=10, group="web")
    spec = from_vm_spec(vm, KVM_WEB.disks, KVM_WEB.interfaces, annotations=(("ip", "192.0.2.20"),))
    assert spec == KVM_WEB


@needs_libvirt
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_libvirt_test_driver_round_trip(spec):
    """Uses libvirt's built-in test driver (test:///default, in-process, no daemon, no VM):
    libvirt parses our XML, fills in its defaults and dumps it; the dump must compare equal."""
    conn = libvirt.open("test:///default")
    try:
        domain = conn.defineXML(dx.build_domain_xml(spec))
        try:
            dumped = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            assert diff.diff_domain(spec, dumped) == {}
            assert diff.diff_domain(replace(spec, vcpus_max=(spec.vcpus_max or spec.vcpus) + 1), dumped) != {}
            # metadata as libvirt's own metadata API returns it
            instance = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, metadata.KVMFLEET_NS)
            assert "kvmfleet.iaas" in instance
        finally:
            domain.undefine()
    finally:
        conn.close()


def test_a_cpu_libvirt_filled_in_is_no_difference_when_none_was_asked():
    desired = DomainSpec(name="vm1", vcpus=1, memory_mb=256, domain_type="qemu")
    assert desired.effective_cpu_mode == "none"
    root = etree.fromstring(dx.build_domain_xml(desired))
    cpu = etree.SubElement(root, "cpu", mode="custom", match="exact", check="none")
    etree.SubElement(cpu, "model", fallback="forbid").text = "qemu64"
    assert diff.diff_domain(desired, etree.tostring(root, encoding="unicode")) == {}
    wanted = DomainSpec(name="vm1", vcpus=1, memory_mb=256, domain_type="qemu", cpu_mode="host-model")
    assert "cpu_mode" in diff.diff_domain(wanted, etree.tostring(root, encoding="unicode"))
