"""Unit tests for lab/guest_debian/build.py and the pure parts of its selftest (no root, network, apt or qemu)."""
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

_DIR = Path(__file__).resolve().parents[2] / "lab" / "guest_debian"


def _load(name, filename):
    spec = importlib.util.spec_from_file_location(name, _DIR / filename)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gb = _load("kvmfleet_debian_guest_build_test", "build.py")
st = _load("kvmfleet_debian_guest_selftest_test", "selftest.py")

# What cloud-init 22.4 printed on ttyS0 in a real boot of the image (keys shortened to two types).
ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIItmMMam7uppO/OZvuo488oAeBrSD3OXer4mjTtjuhdC"
ED25519_FP = "SHA256:MrXBVV19NynIrZJhSkEsGOQwPb9/H4MEmUQHXy74o0c"
ECDSA = ("AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCailEb0Mxgd/Fh1s1i1rGIMh6DuffHRnsgm5h/FjrArxOUhNZ8"
         "/4bNXJJ/G5PeQvHyxBHIW6WQo05qJaE0n2FM=")
ECDSA_FP = "SHA256:7tYLSWWgrbkVYJP4fTYc2+Qam+agSB+yGqM/EB39uBI"
CONSOLE = (
    "[   89.4] cloud-init[318]: Cloud-init v. 22.4.2 running 'modules:config'\r\n"
    "<14>Dec  3 18:31:38 cloud-init: #############################################################\r\n"
    "<14>Dec  3 18:31:38 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n"
    f"<14>Dec  3 18:31:39 cloud-init: 256 {ECDSA_FP} root@kvmfg-selftest (ECDSA)\r\n"
    f"<14>Dec  3 18:31:40 cloud-init: 256 {ED25519_FP} root@kvmfg-selftest (ED25519)\r\n"
    "<14>Dec  3 18:31:40 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\r\n"
    "-----BEGIN SSH HOST KEY KEYS-----\r\n"
    f"ecdsa-sha2-nistp256 {ECDSA} root@kvmfg-selftest\r\n"
    f"ssh-ed25519 {ED25519} root@kvmfg-selftest\r\n"
    "-----END SSH HOST KEY KEYS-----\r\n"
    "[  108.0] cloud-init[348]: Cloud-init v. 22.4.2 finished\r\n"
)


def test_console_host_keys_from_a_real_boot():
    assert gb.parse_console_host_keys(CONSOLE) == [("ecdsa-sha2-nistp256", ECDSA), ("ssh-ed25519", ED25519)]


def test_console_fingerprints_and_they_match_the_keys():
    fps = gb.parse_console_fingerprints(CONSOLE)
    assert fps == {"ECDSA": ECDSA_FP, "ED25519": ED25519_FP}
    assert gb.key_fingerprint(ED25519) == ED25519_FP
    assert gb.key_fingerprint(ECDSA) == ECDSA_FP


def test_incomplete_block_gives_no_keys():
    # the console is read while the guest is still printing: no END yet, nothing to pin
    cut = CONSOLE[:CONSOLE.index("-----END SSH HOST KEY KEYS")]
    assert gb.parse_console_host_keys(cut) == []
    assert gb.parse_console_host_keys("") == []


def test_last_block_wins_after_a_reboot():
    other = CONSOLE.replace(ED25519, "AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")
    keys = gb.parse_console_host_keys(other + CONSOLE)
    assert ("ssh-ed25519", ED25519) in keys and len(keys) == 2


def test_mangled_key_lines_are_dropped():
    # a kernel message printed into the middle of a key line, and a key whose blob names another type
    mangled = CONSOLE.replace(f"ssh-ed25519 {ED25519}", f"ssh-ed25519 {ED25519[:30]}[ 99.1] virtio_net{ED25519[30:]}")
    assert gb.parse_console_host_keys(mangled) == [("ecdsa-sha2-nistp256", ECDSA)]
    wrong_type = CONSOLE.replace(f"ssh-ed25519 {ED25519}", f"ssh-rsa {ED25519}")
    assert gb.parse_console_host_keys(wrong_type) == [("ecdsa-sha2-nistp256", ECDSA)]


def test_known_hosts_lines():
    keys = [("ssh-ed25519", ED25519)]
    assert gb.known_hosts_lines("127.0.0.1", 2222, keys) == f"[127.0.0.1]:2222 ssh-ed25519 {ED25519}\n"
    assert gb.known_hosts_lines("vm1", 22, keys) == f"vm1 ssh-ed25519 {ED25519}\n"


def _stamp(**over):
    args = {"versions": {"cloud-init": "22.4.2-1+deb12u4", gb.KERNEL_META: "6.1.192-3"},
            "tools": {"debootstrap": "1.0.128", "e2fsprogs": "1.47.0-2"}, "disk_mib": 2048}
    args.update(over)
    return gb.stamp_for(args["versions"], args["tools"], args["disk_mib"])


def test_stamp_follows_versions_tools_size_and_image_files(monkeypatch):
    base = _stamp()
    assert base == _stamp()
    assert base != _stamp(versions={"cloud-init": "23.1", gb.KERNEL_META: "6.1.192-3"})
    assert base != _stamp(tools={"debootstrap": "1.0.129", "e2fsprogs": "1.47.0-2"})
    assert base != _stamp(disk_mib=4096)
    monkeypatch.setattr(gb, "IMAGE_FILES", gb.IMAGE_FILES + [("etc/motd", 0o644, "hello\n")])
    assert base != _stamp()


def test_up_to_date_needs_the_same_stamp_and_every_output(tmp_path):
    stamp = _stamp()
    assert not gb.up_to_date(tmp_path, stamp)
    (tmp_path / ".stamp").write_text(json.dumps(stamp))
    for name in gb.OUTPUTS[:-1]:
        (tmp_path / name).write_text("x")
    assert not gb.up_to_date(tmp_path, stamp)
    (tmp_path / gb.OUTPUTS[-1]).write_text("x")
    assert gb.up_to_date(tmp_path, stamp)
    assert not gb.up_to_date(tmp_path, _stamp(disk_mib=1024))
    (tmp_path / ".stamp").write_text("{not json")
    assert not gb.up_to_date(tmp_path, stamp)


def test_image_size_grows_when_the_tree_needs_it():
    assert gb.image_mib(400 * 1024, 2048) == 2048
    assert gb.image_mib(3 * 1024 * 1024, 2048) == 3 * 1024 * 4 // 3 + 256


def test_cloud_cfg_limits_datasources_and_renders_for_networkd():
    cfg = yaml.safe_load(gb.CLOUD_CFG)
    assert cfg["datasource_list"] == ["NoCloud", "None"]
    assert cfg["system_info"]["network"]["renderers"] == ["networkd"]
    assert "dsa" not in cfg["ssh_genkeytypes"]
    assert "networkd" in [u.split(".")[0].replace("systemd-", "") for u in gb.ENABLE_UNITS]


def test_hotplug_rules_online_cpus_and_memory():
    rules = gb.HOTPLUG_RULES.splitlines()
    assert 'SUBSYSTEM=="cpu", ACTION=="add", ATTR{online}=="0", ATTR{online}="1"' in rules
    assert any('SUBSYSTEM=="memory"' in r and 'ATTR{state}="online"' in r for r in rules)


def test_initrd_can_mount_the_root():
    assert {"virtio_blk", "virtio_pci", "ext4"} <= set(gb.INITRAMFS_MODULES)
    assert "MODULES=list" in gb.INITRAMFS_CONF
    assert "root=/dev/vda" in gb.CMDLINE.split() and "console=ttyS0" in gb.CMDLINE.split()


def _fake_root(root):
    for rel, text in (("etc/ssh/ssh_host_ed25519_key", "secret"), ("etc/ssh/ssh_host_ed25519_key.pub", "pub"),
                      ("etc/ssh/sshd_config", "cfg"), ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
                      ("var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "x"),
                      ("var/cache/apt/pkgcache.bin", "x"), ("var/cache/apt/archives/cloud-init.deb", "x"),
                      ("usr/sbin/policy-rc.d", "exit 101"), ("etc/apt/apt.conf.d/99kvmfleet-build", "x"),
                      ("usr/share/doc/cloud-init/copyright", "GPL"), ("usr/share/doc/cloud-init/changelog.gz", "x"),
                      ("usr/share/locale/de/LC_MESSAGES/apt.mo", "x"), ("usr/share/locale/locale.alias", "x"),
                      ("var/log/dpkg.log", "x"), ("var/log/apt/history.log", "x"), ("var/lib/cloud/instance", "x")):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "var" / "lib" / "dbus").mkdir(parents=True)
    (root / "var" / "lib" / "dbus" / "machine-id").symlink_to("/etc/machine-id")


def test_clean_root_removes_what_vms_may_not_share(tmp_path):
    _fake_root(tmp_path)
    gb.clean_root(tmp_path)
    assert not list((tmp_path / "etc" / "ssh").glob("ssh_host_*"))
    assert (tmp_path / "etc" / "ssh" / "sshd_config").exists()
    assert (tmp_path / "etc" / "machine-id").read_text() == ""
    dbus_id = tmp_path / "var" / "lib" / "dbus" / "machine-id"
    assert not dbus_id.exists() and not dbus_id.is_symlink()
    assert list((tmp_path / "var" / "lib" / "apt" / "lists").iterdir()) == [tmp_path / "var/lib/apt/lists/partial"]
    assert not (tmp_path / "var/cache/apt/pkgcache.bin").exists()
    assert not (tmp_path / "var/cache/apt/archives/cloud-init.deb").exists()
    assert (tmp_path / "var/cache/apt/archives/partial").is_dir()
    assert not (tmp_path / "usr/sbin/policy-rc.d").exists()
    assert not (tmp_path / "etc/apt/apt.conf.d/99kvmfleet-build").exists()
    assert (tmp_path / "usr/share/doc/cloud-init/copyright").exists()
    assert not (tmp_path / "usr/share/doc/cloud-init/changelog.gz").exists()
    assert [p.name for p in (tmp_path / "usr/share/locale").iterdir()] == ["locale.alias"]
    assert (tmp_path / "var/log/apt").is_dir() and not (tmp_path / "var/log/apt/history.log").exists()
    assert not (tmp_path / "var/log/dpkg.log").exists()
    assert not list((tmp_path / "var/lib/cloud").iterdir())


def test_image_files_replace_symlinks_and_set_modes(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    gb.write_image_files(tmp_path, skip=("etc/hostname",))
    resolv = tmp_path / "etc" / "resolv.conf"
    assert not resolv.is_symlink() and resolv.read_text() == ""
    assert not (tmp_path / "etc" / "hostname").exists()
    assert (tmp_path / "etc/cloud/cloud.cfg.d/90_kvmfleet.cfg").read_text() == gb.CLOUD_CFG
    assert (tmp_path / "etc/udev/rules.d/80-kvmfleet-hotplug.rules").stat().st_mode & 0o777 == 0o644


def test_check_exits_3_when_stale_without_building(tmp_path, monkeypatch):
    versions = {"cloud-init": "1", gb.KERNEL_META: "2"}
    monkeypatch.setattr(gb, "resolve_versions", lambda allow_update=True: versions)
    monkeypatch.setattr(gb, "tool_versions", lambda: {"debootstrap": "1"})
    monkeypatch.setattr(gb, "build", lambda *a, **k: pytest.fail("an up-to-date or --check run must not build"))
    monkeypatch.setattr(gb.signal, "signal", lambda *a: None)  # leave pytest's own handlers alone
    assert gb.main(["--out", str(tmp_path), "--check"]) == 3
    stamp = gb.stamp_for(versions, {"debootstrap": "1"}, gb.DEFAULT_DISK_MIB)
    (tmp_path / ".stamp").write_text(json.dumps(stamp))
    for name in gb.OUTPUTS:
        (tmp_path / name).write_text("x")
    assert gb.main(["--out", str(tmp_path), "--check"]) == 0
    assert gb.main(["--out", str(tmp_path)]) == 0


def test_seed_documents_are_what_cloud_init_reads():
    ud = st.user_data("ssh-ed25519 AAAA test", "vm1")
    assert ud.startswith("#cloud-config\n")
    assert yaml.safe_load(ud) == {"hostname": "vm1", "ssh_authorized_keys": ["ssh-ed25519 AAAA test"]}
    assert yaml.safe_load(st.meta_data("iid-1", "vm1")) == {"instance-id": "iid-1", "local-hostname": "vm1"}
    net = yaml.safe_load(st.network_config_static("52:54:00:00:00:01", "10.0.2.20", 24, "10.0.2.2", "10.0.2.3"))
    eth0 = net["ethernets"]["eth0"]
    assert net["version"] == 2 and eth0["match"] == {"macaddress": "52:54:00:00:00:01"}
    assert eth0["addresses"] == ["10.0.2.20/24"] and eth0["gateway4"] == "10.0.2.2"


def test_versions_from_one_apt_cache_call():
    text = ("Package: cloud-init\nVersion: 22.4.2-1+deb12u4\nDescription: init\n continued line\n\n"
            "Package: linux-image-cloud-amd64\nVersion: 6.1.192-3\n\n"
            "Package: cloud-init\nVersion: 20.4-1\n\n")
    assert gb.parse_stanzas(text) == {"cloud-init": "22.4.2-1+deb12u4", gb.KERNEL_META: "6.1.192-3"}
