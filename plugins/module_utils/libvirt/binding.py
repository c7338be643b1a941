# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The import of the libvirt Python binding: here only, so its absence is reported once
(base_module) and the rest of the collection imports without it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

LIBVIRT_IMPORT_ERROR = None
try:
    import libvirt
    HAS_LIBVIRT = True
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()


def is_libvirt_error(err):
    """Whether ``err`` is a libvirt.libvirtError (False without the binding)."""
    return HAS_LIBVIRT and isinstance(err, libvirt.libvirtError)
