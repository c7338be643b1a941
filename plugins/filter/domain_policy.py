# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvmfleet.iaas.domain_policy: a customer's domain XML -> the request fields create_vm.yml takes.

The XML goes through ``xml.policy.sanitize_domain_xml`` (hardened parser, allow list); only its
sizes (and a direct kernel boot from the pool) are carried over, everything else create_vm.yml
makes itself. See docs/submit.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import parse_xml, require_lxml
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.policy import XmlPolicy, sanitize_domain_xml
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.filter_errors import filter_errors
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import plain

try:
    from lxml import etree
except ImportError:  # require_lxml reports it when the filter is used
    etree = None

# Devices and settings that pass the policy but that create_vm.yml does not take from the XML:
# it makes its own disk (the submitted image), NIC (fleet-unique MAC, the site's bridge), console,
# balloon and lifecycle.
_NOT_CARRIED_DEVICES = ("interface", "serial", "channel", "memballoon")
_NOT_CARRIED_TOP = ("on_poweroff", "on_reboot", "on_crash")


@filter_errors
def domain_policy(xml, pool_dir="/srv/kvmfleet/images", bridge="br0", console_dir=None):
    """lookup('file', 'domain.xml') | kvmfleet.iaas.domain_policy(pool_dir=..., bridge=...) -> dict

    Returns vcpus, vcpus_max, memory_mb, memory_max_mb (kernel, initrd, cmdline when the XML boots
    a kernel) and ``ignored``: XPaths of what was dropped. Raises AnsibleFilterError with the
    policy's message when the XML is refused.
    """
    require_lxml()
    return _request_fields(plain(xml), XmlPolicy(pool_dir=str(pool_dir), bridges=(str(bridge),),
                                                 console_dir=console_dir, path_exists=_host_checks))


def _host_checks(_path):
    """The controller cannot see the pool; the vm module on the host checks that files exist."""
    return True


def _request_fields(xml, policy):
    if not isinstance(xml, (str, bytes)):
        raise ValidationError("domain_policy expects the domain XML as text, got %s" % type(xml).__name__)
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    if len(data) > policy.max_bytes:
        raise ValidationError("domain XML is %d bytes, more than the %d allowed" % (len(data), policy.max_bytes))
    root = parse_xml(data)
    dropped = _drop_disks(root) + _not_carried(root)
    sanitized = sanitize_domain_xml(etree.tostring(root), policy)
    spec = sanitized.spec
    fields = dict(vcpus=spec.vcpus, vcpus_max=spec.vcpus_max, memory_mb=spec.memory_mb,
                  memory_max_mb=spec.memory_max_mb)
    if spec.kernel:
        fields.update(kernel=spec.kernel, initrd=spec.initrd, cmdline=spec.cmdline)
    if spec.machine:
        dropped.append("/domain/os/type/@machine")   # create_vm.yml does not set a machine type
    fields["ignored"] = list(sanitized.ignored) + [path for path in dropped if path not in sanitized.ignored]
    return fields


def _drop_disks(root):
    """Remove the XML's disks (the submitted image replaces them); refuse a second hard disk."""
    devices = root.find("devices")
    if devices is None:
        return []
    disks = devices.findall("disk")
    hard = [disk for disk in disks if disk.get("device", "disk") == "disk"]
    if len(hard) > 1:
        raise ValidationError("domain XML has %d disks; a submitted VM has one, the submitted image" % len(hard),
                              field="/domain/devices/disk")
    paths = [root.getroottree().getpath(disk) for disk in disks]
    for disk in disks:
        devices.remove(disk)
    return paths


def _not_carried(root):
    """XPaths of accepted elements create_vm.yml makes its own way."""
    tree = root.getroottree()
    found = [tree.getpath(element) for tag in _NOT_CARRIED_TOP for element in root.findall(tag)]
    devices = root.find("devices")
    if devices is not None:
        found += [tree.getpath(element) for element in devices if element.tag in _NOT_CARRIED_DEVICES]
    return found


class FilterModule(object):
    def filters(self):
        return {"domain_policy": domain_policy}
