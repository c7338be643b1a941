# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documents of a VM's NoCloud seed (user-data, meta-data, network-config), from what a user
asked: SSH keys, cloud-config user-data, hostname, a fixed address. See docs/cloud-init.md.

The documents are written as JSON, which is YAML (cloud-init reads them with a YAML parser):
stable bytes for the same request, so the seed's digest says whether it changed, and no YAML
library is needed on the hypervisor to write them. Parsing the user's user-data does need one
(PyYAML, which Ansible itself requires on the controller). Pure logic.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.kvmfleet.iaas.plugins.module_utils.cloudinit.keys import check_authorized_keys
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import MissingLibrary, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.ipam import parse_ip, parse_network
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import check_label

CLOUD_CONFIG_HEADER = "#cloud-config"
MAX_USER_DATA_BYTES = 64 * 1024
# cloud-config keys that carry a password in clear, refused: customers log in with keys.
_PLAINTEXT_PASSWORD_KEYS = ("password", "chpasswd")
_PLAINTEXT_USER_KEYS = ("plain_text_passwd",)
# Keys kvmfleet sets from its own options; user-data may not set them differently.
_OWN_KEYS = ("hostname", "fqdn", "ssh_authorized_keys")


def _fail(field, rule, **details):
    raise ValidationError("%s: %s" % (field, rule), field=field, **details)


def _yaml():
    try:
        import yaml  # PyYAML: Ansible's own dependency on the controller; the kvm role installs python3-yaml
    except ImportError as err:
        raise MissingLibrary("PyYAML", str(err))
    return yaml


def check_user_data(text, field="user_data"):
    """The user's cloud-config as a dict (None: none given).

    It must start with ``#cloud-config``, be at most 64 KiB, parse as YAML into a mapping, and
    hold no password in clear (``password``, ``chpasswd``, a user's ``plain_text_passwd``; a
    user's hashed ``passwd`` is accepted).
    """
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        _fail(field, "must be cloud-config text starting with %s, got %s" % (CLOUD_CONFIG_HEADER, type(text).__name__))
    size = len(text.encode("utf-8"))
    if size > MAX_USER_DATA_BYTES:
        _fail(field, "is %d bytes, more than the %d (64 KiB) a seed takes" % (size, MAX_USER_DATA_BYTES))
    if text.split("\n", 1)[0].strip() != CLOUD_CONFIG_HEADER:
        _fail(field, "must be cloud-config: its first line must be %s (scripts and MIME archives are not "
                     "accepted)" % CLOUD_CONFIG_HEADER)
    yaml = _yaml()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        _fail(field, "is not valid YAML%s: %s" % (where, getattr(err, "problem", None) or err))
    if config is None:
        return {}
    if not isinstance(config, dict):
        _fail(field, "must be a YAML mapping of cloud-config keys, got a %s" % type(config).__name__)
    for key in _PLAINTEXT_PASSWORD_KEYS:
        if key in config:
            _fail(field, "sets %r: passwords in clear are not accepted; log in with ssh_authorized_keys "
                         "(a user's hashed passwd is accepted)" % key)
    for number, user in enumerate(config.get("users") or []):
        if isinstance(user, dict):
            for key in _PLAINTEXT_USER_KEYS:
                if key in user:
                    _fail(field, "users[%d] sets %r: passwords in clear are not accepted; use ssh_authorized_keys "
                                 "or a hashed passwd" % (number, key))
            passwd = user.get("passwd")
            if passwd is not None and not (isinstance(passwd, str) and passwd.startswith("$")):
                _fail(field, "users[%d].passwd must be a crypt(3) hash (starting with $), not a password in clear" % number)
    try:
        json.dumps(config)
    except (TypeError, ValueError):
        _fail(field, "holds values that are not plain YAML scalars, lists and mappings (dates or binary?); quote them")
    return config


def check_hostname(value, name, field="hostname"):
    """The guest's hostname: an RFC 1123 label; None means the VM's name."""
    if value is None or value == "":
        return name
    return check_label(value, field)


def network_config(mac, ip, network, gateway=None, nameservers=()):
    """cloud-init network-config version 2 for one NIC with a fixed ``ip`` in ``network``."""
    net = parse_network(network, "network")
    address = parse_ip(ip, "ip")
    if address not in net:
        _fail("ip", "%s is not in the VM network %s" % (address, net))
    ethernet = {"match": {"macaddress": mac.lower()}, "set-name": "eth0",
                "addresses": ["%s/%d" % (address, net.prefixlen)], "dhcp4": False}
    if gateway:
        gw = parse_ip(gateway, "gateway")
        if gw not in net:
            _fail("gateway", "%s is not in the VM network %s" % (gw, net))
        # 0.0.0.0/0, not netplan's "default": cloud-init before 23.x (Debian 12 has 22.4) fails its
        # whole init-local stage on "Address default is not a valid ip network".
        ethernet["routes"] = [{"to": "0.0.0.0/0", "via": str(gw)}]
    servers = [str(parse_ip(server, "nameservers")) for server in (nameservers or ())]
    if servers:
        ethernet["nameservers"] = {"addresses": servers}
    return {"version": 2, "ethernets": {"eth0": ethernet}}


class SeedDocuments:
    """The three files of a NoCloud seed and the digest that names the seed's volume."""

    def __init__(self, name, hostname=None, ssh_authorized_keys=None, user_data=None, network=None):
        self.name = name
        self.hostname = check_hostname(hostname, name)
        self.keys = check_authorized_keys(ssh_authorized_keys)
        config = dict(check_user_data(user_data) or {})
        given = config.get("hostname")
        if given is not None and given != self.hostname:
            _fail("user_data", "sets hostname %r but the VM's hostname is %r; give it as hostname instead"
                  % (given, self.hostname))
        for key in ("fqdn",):
            if key in config and str(config[key]).split(".", maxsplit=1)[0] != self.hostname:
                _fail("user_data", "sets fqdn %r, whose first label is not the hostname %r" % (config[key], self.hostname))
        extra_keys = config.get("ssh_authorized_keys")
        if extra_keys is not None:
            self.keys = check_authorized_keys(list(self.keys) + list(extra_keys or []), "user_data.ssh_authorized_keys")
        config["hostname"] = self.hostname
        if self.keys:
            config["ssh_authorized_keys"] = list(self.keys)
        self.user_data = config
        self.meta_data = {"instance-id": "kvmfleet-%s" % name, "local-hostname": self.hostname}
        self.network = network

    def files(self):
        """{file name: text} of the seed (network-config only with a fixed address)."""
        files = {
            "user-data": "%s\n%s\n" % (CLOUD_CONFIG_HEADER, json.dumps(self.user_data, indent=2, sort_keys=True)),
            "meta-data": json.dumps(self.meta_data, indent=2, sort_keys=True) + "\n",
        }
        if self.network is not None:
            files["network-config"] = json.dumps(self.network, indent=2, sort_keys=True) + "\n"
        return files

    def digest(self):
        text = json.dumps(self.files(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def volume_name(self):
        """The seed's volume in the VM's pool: named after the VM and its content, so a changed
        key is a new seed (and the same request the same one)."""
        return seed_volume_prefix(self.name) + self.digest()[:16] + ".iso"


def seed_volume_prefix(vm_name):
    return "%s-seed-" % vm_name


def is_seed_of(vm_name, volume_name):
    """Whether ``volume_name`` is a seed kvmfleet made for ``vm_name``."""
    prefix = seed_volume_prefix(vm_name)
    digest = volume_name[len(prefix):-len(".iso")] if volume_name.endswith(".iso") else ""
    return volume_name.startswith(prefix) and len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)
