# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cloud-init seed documents and the checks of SSH keys, user-data, hostname and the fixed
address's network-config. Keys are made by ssh-keygen, as customers make theirs."""

import base64
import json
import shutil
import struct
import subprocess

import pytest
import yaml

from ansible_collections.kvmfleet.iaas.plugins.module_utils.cloudinit import keys as K
from ansible_collections.kvmfleet.iaas.plugins.module_utils.cloudinit import seed as S
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import MissingLibrary, ValidationError

needs_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) missing")


@pytest.fixture(scope="module")
def made_keys(tmp_path_factory):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) missing")
    tmp = tmp_path_factory.mktemp("keys")
    made = {}
    for name, args in (("ed25519", ["-t", "ed25519"]), ("rsa3072", ["-t", "rsa", "-b", "3072"]),
                       ("rsa1024", ["-t", "rsa", "-b", "1024"]), ("ecdsa256", ["-t", "ecdsa", "-b", "256"]),
                       ("ecdsa521", ["-t", "ecdsa", "-b", "521"])):
        path = tmp / name
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", "user@%s" % name, "-f", str(path)] + args, check=True)
        made[name] = (path.with_suffix(".pub").read_text().strip(), path.read_text())
    return made


def blob(*parts):
    return base64.b64encode(b"".join(struct.pack(">I", len(p)) + p for p in parts)).decode()


@pytest.mark.parametrize("name", ["ed25519", "rsa3072", "ecdsa256", "ecdsa521"])
def test_real_public_keys_are_accepted_as_given(made_keys, name):
    public, _private = made_keys[name]
    assert K.check_public_key(public) == public
    assert K.check_public_key("  %s \n" % public) == public


@pytest.mark.parametrize("make, message", [
    (lambda k: k["rsa1024"][0], "RSA keys must have at least 2048 bits, this one has 1024"),
    (lambda k: k["ed25519"][1], "is a private key; give the public key"),
    (lambda k: 'command="rm -rf /" ' + k["ed25519"][0], "authorized_keys options (such as command= or from=) are not accepted"),
    (lambda k: "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "key type 'ssh-dss' is not one of"),
    (lambda k: "ssh-ed25519", "has no key data after ssh-ed25519"),
    (lambda k: "ssh-ed25519 not*base64", "the key data is not base64"),
    (lambda k: "ssh-ed25519 " + k["rsa3072"][0].split()[1], "the key data is not a ssh-ed25519 key"),
    (lambda k: "ssh-ed25519 " + blob(b"ssh-ed25519", b"short"), "not an Ed25519 key (32 bytes)"),
    (lambda k: "ssh-ed25519 " + blob(b"ssh-ed25519")[:-4], "truncated"),
    (lambda k: "ecdsa-sha2-nistp256 " + blob(b"ecdsa-sha2-nistp256", b"nistp384", b"\x04xx"), "not an ECDSA nistp256 key"),
    (lambda k: k["ed25519"][0] + "\n" + k["rsa3072"][0], "one key per list item"),
    (lambda k: k["ed25519"][0] + " caf\u00e9", "the comment must be printable ASCII"),
    (lambda k: "", "must be a non-empty string"),
    (lambda k: 42, "must be a non-empty string"),
])
def test_bad_keys_are_refused_with_the_reason(made_keys, make, message):
    with pytest.raises(ValidationError) as err:
        K.check_public_key(make(made_keys), "ssh_authorized_keys[0]")
    assert message in str(err.value) and str(err.value).startswith("ssh_authorized_keys[0]=")


def test_key_lists(made_keys):
    ed, rsa = made_keys["ed25519"][0], made_keys["rsa3072"][0]
    # the same key twice (another comment) is one key
    assert K.check_authorized_keys([ed, rsa, ed.rsplit(" ", 1)[0] + " other"]) == [ed, rsa]
    assert K.check_authorized_keys(None) == []
    with pytest.raises(ValidationError, match=r"must be a list of public keys \(one key per item\)"):
        K.check_authorized_keys(ed)
    with pytest.raises(ValidationError, match=r"ssh_authorized_keys\[1\]="):
        K.check_authorized_keys([ed, "ssh-rsa AAAA"])
    with pytest.raises(ValidationError, match="at most 32 keys, got 33"):
        K.check_authorized_keys([ed] * 33)


@pytest.mark.parametrize("text, message", [
    ("runcmd: [ls]\n", "its first line must be #cloud-config"),
    ("#!/bin/sh\necho hi\n", "its first line must be #cloud-config"),
    ("#cloud-config\nruncmd: [ls\n", "is not valid YAML at line"),
    ("#cloud-config\n- a\n- b\n", "must be a YAML mapping of cloud-config keys, got a list"),
    ("#cloud-config\npassword: hunter2\n", "sets 'password': passwords in clear are not accepted"),
    ("#cloud-config\nchpasswd: {expire: false}\n", "sets 'chpasswd'"),
    ("#cloud-config\nusers: [{name: bob, plain_text_passwd: x}]\n", "users[0] sets 'plain_text_passwd'"),
    ("#cloud-config\nusers: [{name: bob, passwd: hunter2}]\n", "users[0].passwd must be a crypt(3) hash"),
    ("#cloud-config\nwhen: 2026-12-03\n", "not plain YAML scalars"),
    ("#cloud-config\n" + "# x\n" * 20000, "more than the 65536 (64 KiB) a seed takes"),
    (b"#cloud-config\n", "must be cloud-config text"),
])
def test_bad_user_data_is_refused_with_the_reason(text, message):
    with pytest.raises(ValidationError) as err:
        S.check_user_data(text)
    assert str(err.value).startswith("user_data: ") and message in str(err.value)


def test_user_data_accepted():
    assert S.check_user_data(None) is None
    assert S.check_user_data("#cloud-config\n") == {}
    config = S.check_user_data("#cloud-config\npackages: [nginx]\nusers: [default, {name: bob, passwd: $6$abc$def}]\n")
    assert config["packages"] == ["nginx"] and config["users"][1]["passwd"] == "$6$abc$def"


def test_seed_documents(made_keys):
    ed, rsa = made_keys["ed25519"][0], made_keys["rsa3072"][0]
    docs = S.SeedDocuments("web1", ssh_authorized_keys=[ed],
                           user_data="#cloud-config\npackages: [nginx]\nssh_authorized_keys: ['%s']\n" % rsa)
    files = docs.files()
    assert sorted(files) == ["meta-data", "user-data"]
    assert files["user-data"].startswith("#cloud-config\n")
    user = yaml.safe_load(files["user-data"])   # what cloud-init does with it
    assert user == {"hostname": "web1", "packages": ["nginx"], "ssh_authorized_keys": [ed, rsa]}
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": "kvmfleet-web1", "local-hostname": "web1"}
    # the same request is the same seed; a changed key is another
    again = S.SeedDocuments("web1", ssh_authorized_keys=[ed],
                            user_data="#cloud-config\npackages: [nginx]\nssh_authorized_keys: ['%s']\n" % rsa)
    assert again.volume_name() == docs.volume_name() and again.files() == files
    other = S.SeedDocuments("web1", ssh_authorized_keys=[rsa])
    assert other.volume_name() != docs.volume_name()
    assert docs.volume_name().startswith("web1-seed-") and S.is_seed_of("web1", docs.volume_name())
    assert not S.is_seed_of("web", docs.volume_name()) and not S.is_seed_of("web1", "web1.qcow2")
    assert not S.is_seed_of("web1", "web1-seed-notahexdigest00.iso")


def test_hostname_and_conflicts():
    assert S.SeedDocuments("web1").hostname == "web1"
    assert S.SeedDocuments("web1", hostname="shop").user_data["hostname"] == "shop"
    with pytest.raises(ValidationError, match="hostname='Shop': must be lowercase"):
        S.SeedDocuments("web1", hostname="Shop")
    with pytest.raises(ValidationError, match="hostname='shop_1': must be an RFC 1123 hostname label"):
        S.SeedDocuments("web1", hostname="shop_1")
    with pytest.raises(ValidationError, match="user_data: sets hostname 'db' but the VM's hostname is 'web1'"):
        S.SeedDocuments("web1", user_data="#cloud-config\nhostname: db\n")
    with pytest.raises(ValidationError, match="sets fqdn 'db.example.org'"):
        S.SeedDocuments("web1", user_data="#cloud-config\nfqdn: db.example.org\n")
    with pytest.raises(ValidationError, match=r"user_data.ssh_authorized_keys\[0\]="):
        S.SeedDocuments("web1", user_data="#cloud-config\nssh_authorized_keys: [nonsense]\n")


def test_network_config_for_a_fixed_address():
    config = S.network_config("52:54:00:AA:BB:CC", "192.0.2.51", "192.0.2.0/24", "192.0.2.1", ["192.0.2.1"])
    assert config == {"version": 2, "ethernets": {"eth0": {
        "match": {"macaddress": "52:54:00:aa:bb:cc"}, "set-name": "eth0", "addresses": ["192.0.2.51/24"],
        "dhcp4": False, "routes": [{"to": "0.0.0.0/0", "via": "192.0.2.1"}],
        "nameservers": {"addresses": ["192.0.2.1"]}}}}
    docs = S.SeedDocuments("web1", network=config)
    assert json.loads(docs.files()["network-config"]) == config
    assert "routes" not in S.network_config("52:54:00:aa:bb:cc", "192.0.2.51", "192.0.2.0/24")["ethernets"]["eth0"]
    with pytest.raises(ValidationError, match="ip: 198.51.100.5 is not in the VM network 192.0.2.0/24"):
        S.network_config("52:54:00:aa:bb:cc", "198.51.100.5", "192.0.2.0/24")
    with pytest.raises(ValidationError, match="gateway: 198.51.100.1 is not in the VM network"):
        S.network_config("52:54:00:aa:bb:cc", "192.0.2.51", "192.0.2.0/24", "198.51.100.1")


def test_user_data_without_pyyaml_names_it(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(MissingLibrary) as err:
        S.check_user_data("#cloud-config\n")
    assert err.value.library == "PyYAML" and "(PyYAML)" in str(err.value)
