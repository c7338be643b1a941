# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt URIs: the default one, and whether one names the machine we run on. No libvirt import."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import urlsplit

DEFAULT_URI = "qemu:///system"


def uri_is_this_host(uri):
    """Whether the URI's hypervisor is the machine we run on (so /proc and statvfs describe it).

    The test driver is in-process and fake: its host is not this one.
    """
    parts = urlsplit(uri or DEFAULT_URI)
    driver, _plus, transport = parts.scheme.partition("+")
    if driver == "test":
        return False
    if transport and transport != "unix":
        return False
    return parts.hostname in (None, "", "localhost")
