# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place in plugins/ that talks to libvirt (binding.py is the only import of the
libvirt Python binding). connection.VirtConnection opens a connection, runs every call under a
deadline (deadline.py) and types libvirt's errors (error_map.py); its calls are grouped by
concern in host.py, storage.py, domains.py, migration.py and resize.py. uri.py and
deadline.py import no libvirt, so base_module can read the defaults without the binding."""
