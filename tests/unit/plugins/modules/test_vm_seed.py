"""The vm module's cloud-init seed against libvirt's test driver, with the real cloud-localds:
made with the VM, rewritten in place when a key changes, removed with the VM and on rollback,
refused bad input before anything is made."""
import shutil
import subprocess

import pytest
import yaml

from ansible.module_utils import basic
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import parse_xml
from ansible_collections.kvmfleet.iaas.plugins.modules import vm

libvirt = pytest.importorskip("libvirt")
pytestmark = pytest.mark.skipif(shutil.which("cloud-localds") is None or shutil.which("isoinfo") is None,
                                reason="cloud-image-utils / genisoimage missing (bindep.txt test profile)")

URI = "test:///default"
KEY_A = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbmwXk9zRWpyfpQmt1zqUNU4RkmPSSJVpfNLxe0ppxQ alice@laptop")
KEY_B = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBYHnNbCt6tI9KE3/OSClLs6YyFYPPcC9kE2XdjCR/Rr bob@desk")


@pytest.fixture
def pool_dir(conn, tmp_path):
    conn.storagePoolDefineXML("<pool type='dir'><name>seeds</name><target><path>%s</path></target></pool>" % tmp_path, 0).create(0)
    return tmp_path


def base(**extra):
    args = dict(name="web1", vcpus=1, memory_mb=256, disk_gb=1, pool="seeds", uri=URI, virt_type="qemu",
                serial="pty", stop_timeout=0, ssh_authorized_keys=[KEY_A])
    args.update(extra)
    return args


def seed_files(path):
    """{name: text} of the ISO, read back with isoinfo (Rock Ridge names), and its volume label."""
    label = subprocess.run(["isoinfo", "-d", "-i", str(path)], check=True, capture_output=True, text=True).stdout
    files = {}
    for name in ("user-data", "meta-data", "network-config"):
        out = subprocess.run(["isoinfo", "-R", "-i", str(path), "-x", "/" + name], capture_output=True, text=True,
                             check=False)   # a file not in the ISO prints nothing
        if out.stdout:
            files[name] = out.stdout
    return [line.split(":", 1)[1].strip() for line in label.splitlines() if line.startswith("Volume id:")][0], files


def test_a_seed_is_made_with_the_vm_and_attached_read_only(conn, run_module, pool_dir):
    result = run_module(vm, base(hostname="shop", user_data="#cloud-config\npackages: [nginx]\n"))
    assert result["steps"] == ["create_disk", "write_seed", "define", "start"], result
    seed = pool_dir / "web1-seed.iso"
    assert result["vm"]["seed"] == str(seed) and oct(seed.stat().st_mode & 0o777) == "0o600"
    label, files = seed_files(seed)
    assert label == "cidata" and sorted(files) == ["meta-data", "user-data"]
    assert files["user-data"].startswith("#cloud-config\n")
    assert yaml.safe_load(files["user-data"]) == {"hostname": "shop", "packages": ["nginx"], "ssh_authorized_keys": [KEY_A]}
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": "kvmfleet-web1", "local-hostname": "shop"}
    root = parse_xml(conn.lookupByName("web1").XMLDesc(2))
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == str(seed) and cdrom.find("readonly") is not None
    assert cdrom.find("target").get("bus") == "scsi"
    assert root.find("devices/controller[@type='scsi']").get("model") == "virtio-scsi"
    assert root.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"
    assert parse_domain(conn.lookupByName("web1").XMLDesc(2)).seed_digest
    assert not [p for p in pool_dir.iterdir() if p.name.startswith(".kvmfleet-seed-")]   # no work dir left
    again = run_module(vm, base(hostname="shop", user_data="#cloud-config\npackages: [nginx]\n"))
    assert again["changed"] is False and again["steps"] == []


def test_a_fixed_address_gives_a_network_config(conn, run_module, pool_dir):
    ipv4 = dict(address="192.0.2.51", network="192.0.2.0/24", gateway="192.0.2.1", nameservers=["192.0.2.1"])
    result = run_module(vm, base(ipv4=ipv4, mac="52:54:00:00:00:51"))
    _label, files = seed_files(pool_dir / "web1-seed.iso")
    eth0 = yaml.safe_load(files["network-config"])["ethernets"]["eth0"]
    assert eth0["addresses"] == ["192.0.2.51/24"] and eth0["match"] == {"macaddress": "52:54:00:00:00:51"}
    assert result["changed"] is True


def test_a_changed_key_rewrites_the_seed_in_place_and_is_reported(conn, run_module, pool_dir):
    run_module(vm, base())
    digest = parse_domain(conn.lookupByName("web1").XMLDesc(2)).seed_digest
    predicted = run_module(vm, base(ssh_authorized_keys=[KEY_B], _ansible_check_mode=True, _ansible_diff=True))
    assert yaml.safe_load(seed_files(pool_dir / "web1-seed.iso")[1]["user-data"])["ssh_authorized_keys"] == [KEY_A]
    done = run_module(vm, base(ssh_authorized_keys=[KEY_B], _ansible_diff=True))
    assert not done.get("failed"), done.get("msg")
    assert (predicted["changed"], predicted["steps"]) == (done["changed"], done["steps"]) == (True, ["write_seed"])
    assert predicted["diff"] == done["diff"] and digest in done["diff"]["before"] and digest not in done["diff"]["after"]
    assert yaml.safe_load(seed_files(pool_dir / "web1-seed.iso")[1]["user-data"])["ssh_authorized_keys"] == [KEY_B]
    dom = conn.lookupByName("web1")
    assert dom.isActive()
    for flags in (0, 2):    # live and persistent definitions both carry the new digest
        assert parse_domain(dom.XMLDesc(flags)).seed_digest not in (None, digest)
    assert run_module(vm, base(ssh_authorized_keys=[KEY_B]))["changed"] is False
    # a seed file lost from the store is written again
    (pool_dir / "web1-seed.iso").unlink()
    assert run_module(vm, base(ssh_authorized_keys=[KEY_B]))["steps"] == ["write_seed"]


def test_absent_removes_the_seed_with_the_disk(conn, run_module, pool_dir):
    run_module(vm, base())
    gone = run_module(vm, dict(name="web1", state="absent", uri=URI))
    assert gone["steps"] == ["stop", "undefine", "delete_disk", "delete_seed"] and gone["vm"]["seed"].endswith("web1-seed.iso")
    assert not (pool_dir / "web1-seed.iso").exists()


def test_a_failed_create_removes_the_seed_too(conn, run_module, pool_dir, monkeypatch):
    def broken_start(self, dom):
        raise VirtError("QEMU could not start: simulated")
    monkeypatch.setattr(VirtConnection, "start_domain", broken_start)
    result = run_module(vm, base())
    assert result["failed"] is True and result["rolled_back"] == ["definition", "disk", "cloud-init seed"]
    assert list(pool_dir.iterdir()) == []


@pytest.mark.parametrize("change, message", [
    (dict(ssh_authorized_keys=["ssh-rsa AAAA"]), "ssh_authorized_keys[0]="),
    (dict(ssh_authorized_keys=['command="ls" ' + KEY_A]), "authorized_keys options"),
    (dict(user_data="packages: [x]\n"), "user_data: must be cloud-config"),
    (dict(user_data="#cloud-config\npassword: secret\n"), "passwords in clear are not accepted"),
    (dict(user_data="#cloud-config\n" + "#" * 70000), "more than the 65536"),
    (dict(hostname="Shop"), "hostname='Shop': must be lowercase"),
    (dict(ipv4=dict(address="198.51.100.9", network="192.0.2.0/24")), "ip: 198.51.100.9 is not in the VM network"),
])
def test_bad_cloud_init_input_is_refused_before_anything_is_made(conn, run_module, pool_dir, change, message):
    result = run_module(vm, base(**change))
    assert result["failed"] is True and message in result["msg"], result
    assert [d.name() for d in conn.listAllDomains()] == ["test"] and list(pool_dir.iterdir()) == []


def test_a_host_without_cloud_localds_is_told_what_to_install(conn, run_module, pool_dir, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    result = run_module(vm, base())
    assert result["failed"] is True and "cloud-localds (Debian package cloud-image-utils) is not installed" in result["msg"]
    assert result["rolled_back"] == ["disk"]
    assert [d.name() for d in conn.listAllDomains()] == ["test"] and list(pool_dir.iterdir()) == []
