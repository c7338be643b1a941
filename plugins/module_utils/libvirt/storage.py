# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage calls of ``VirtConnection``: the image store's size, pools and volumes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.facts import (
    DEFAULT_STORAGE_PATH,
    storage_fact,
    storage_from_statvfs,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.deadline import call_with_deadline
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.error_map import (
    ERR_NO_STORAGE_POOL,
    ERR_NO_STORAGE_VOL,
    libvirt_code,
    nonfatal,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import uri_is_this_host
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.pool import pool_path, pool_xml, raw_volume_xml

_LIST_STORAGE_POOLS_ACTIVE = 2      # VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE


class StorageCalls:
    """Mixin of VirtConnection (connection.py)."""

    def storage(self, path=DEFAULT_STORAGE_PATH):
        """{path, total_gb, free_gb} of the image store: statvfs on this host, else the
        active libvirt pool whose target is ``path``; sizes None when neither exists."""
        path = os.path.normpath(path)
        if uri_is_this_host(self.uri) and os.path.isdir(path):
            try:
                # statvfs of a hung NFS mount blocks like a libvirt call does
                st = call_with_deadline(os.statvfs, (path,), timeout=self.timeout,
                                        description="statvfs %s" % path)
            except OSError:
                return storage_fact(path, None, None)
            return storage_from_statvfs(path, st)
        pool = self.pool_for_path(path)
        if pool is None:
            return storage_fact(path, None, None)
        _state, capacity, _allocation, available = self.call(pool.info)
        return storage_fact(path, capacity, available)

    def pool_for_path(self, path):
        """The active storage pool whose target directory is ``path``, or None."""
        path = os.path.normpath(path)
        for pool in self.call(self.conn.listAllStoragePools, _LIST_STORAGE_POOLS_ACTIVE):
            target = self.pool_dir(pool)
            if target and os.path.normpath(target) == path:
                return pool
        return None

    def lookup_pool(self, name):
        """The storage pool called ``name``, or None when there is none."""
        try:
            return self.call(self.conn.storagePoolLookupByName, name)
        except VirtError as err:
            if libvirt_code(err) == ERR_NO_STORAGE_POOL:
                return None
            raise

    def pool_dir(self, pool):
        """The target directory of a pool."""
        return pool_path(self.call(pool.XMLDesc, 0))

    def pool_state(self, pool):
        """{active, autostart, path} of a defined pool."""
        return dict(active=bool(self.call(pool.isActive)), autostart=bool(self.call(pool.autostart)),
                    path=self.pool_dir(pool))

    def define_pool(self, name, path):
        """Define (or redefine) the directory pool ``name`` at ``path``; returns the pool."""
        return self.call(self.conn.storagePoolDefineXML, pool_xml(name, path), 0)

    def start_pool(self, pool):
        self.call(pool.create, 0)

    def stop_pool(self, pool):
        self.call(pool.destroy)

    def undefine_pool(self, pool):
        self.call(pool.undefine)

    def set_pool_autostart(self, pool, enabled):
        self.call(pool.setAutostart, 1 if enabled else 0)

    def upload_file(self, pool, name, path):
        """A new raw volume ``name`` in ``pool`` with the bytes of the local file ``path`` (a
        libvirt stream: the pool may be on another host). On failure the half-made volume goes."""
        size = os.path.getsize(path)
        volume = self.create_volume(pool, raw_volume_xml(name, size))

        def send():
            stream = self.conn.newStream(0)
            try:
                volume.upload(stream, 0, size, 0)
                with open(path, "rb") as handle:
                    stream.sendAll(lambda _stream, nbytes, source: source.read(nbytes), handle)
                stream.finish()
            except Exception:
                try:
                    stream.abort()
                except Exception:
                    pass
                raise
        try:
            self.call(send, timeout=self._change_timeout())
        except VirtError:
            with nonfatal():
                self.delete_volume(volume)
            raise
        return volume

    def refresh_pool(self, pool):
        """Have libvirt re-read the pool's directory (after a file was written there)."""
        self.call(pool.refresh, 0)

    def lookup_volume(self, pool, name):
        """The volume ``name`` of ``pool`` (refreshed first: the store may be shared), or None."""
        self.call(pool.refresh, 0)
        try:
            return self.call(pool.storageVolLookupByName, name)
        except VirtError as err:
            if libvirt_code(err) == ERR_NO_STORAGE_VOL:
                return None
            raise

    def volume_capacity(self, volume):
        """A volume's capacity in bytes (virStorageVolGetInfo)."""
        return self.call(volume.info)[1]

    def create_volume(self, pool, xml):
        return self.call(pool.createXML, xml, 0, timeout=self._change_timeout())

    def delete_volume(self, volume):
        self.call(volume.delete, 0, timeout=self._change_timeout())
