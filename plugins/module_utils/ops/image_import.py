# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps of the image module on one image of a pool directory: read its record, hash and
inspect a source with qemu-img, import it (with rollback), find its users, remove it.

An import converts into a hidden temporary file of the pool, verifies the copy, then hard-links
image and record to their names: a link fails rather than overwrite an image that appeared
meanwhile, and an image linked before a failure is unlinked again, so a failed import leaves
the pool as it was. What is allowed is ``image_policy``'s; commands run through ``host``
(an AnsibleModule: ``run_command``, ``get_bin_path``) as argument lists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import stat
import tempfile

from ansible_collections.kvmfleet.iaas.plugins.module_utils import image_policy as policy
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import CommandFailed, Conflict, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.images import tenant_image_dir

_CHUNK = 1024 * 1024


def source_sha256(src, expected=None):
    """sha256 of a regular source file, compared with ``expected`` when given."""
    try:
        info = os.stat(src)
    except OSError as err:
        raise ValidationError("src %s cannot be read: %s" % (src, err.strerror), field="src", value=src)
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError("src %s is not a regular file" % src, field="src", value=src)
    digest = hashlib.sha256()
    try:
        with open(src, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except (IOError, OSError) as err:
        raise ValidationError("src %s cannot be read: %s" % (src, err.strerror), field="src", value=src)
    sha = digest.hexdigest()
    if expected is not None and sha != expected:
        raise ValidationError("src %s has sha256 %s, not the expected %s" % (src, sha, expected),
                              field="checksum", sha256=sha)
    return sha


def read_backing(path):
    """The backing file name a qcow2 header at ``path`` names, or None."""
    try:
        with open(path, "rb") as handle:
            span = policy.qcow2_backing_span(handle.read(policy.QCOW2_HEADER_PREFIX))
            if span is None:
                return None
            handle.seek(span[0])
            return handle.read(span[1]).decode("utf-8", "replace")
    except (IOError, OSError):
        return None


class PoolImage:
    """One image name in a pool directory, its record, and the qemu-img runs on its sources."""

    def __init__(self, host, pool_dir, name, max_virtual_gb=policy.DEFAULT_MAX_VIRTUAL_GB, tenant=None):
        self.name = policy.check_image_name(name)
        if not os.path.isdir(pool_dir):
            raise ValidationError("pool directory %s does not exist" % pool_dir, field="pool_dir", value=pool_dir)
        self.host = host
        self.pool_dir = pool_dir
        # A tenant's images live in its own directory of the pool (tenancy/images.py); the VMs'
        # disks that use them as backing files stay in the pool itself.
        self.store_dir = tenant_image_dir(pool_dir, tenant) if tenant is not None else pool_dir
        self.max_virtual_gb = max_virtual_gb
        self.path = os.path.join(self.store_dir, self.name)
        self.sidecar = os.path.join(self.store_dir, policy.sidecar_name(self.name))

    # ---- reading

    def read_record(self):
        """The record kvmfleet wrote beside the image, or None."""
        if not os.path.lexists(self.sidecar):
            return None
        try:
            with open(self.sidecar) as handle:
                text = handle.read()
        except (IOError, OSError) as err:
            raise ValidationError("cannot read %s: %s" % (self.sidecar, err.strerror), path=self.sidecar)
        return policy.parse_sidecar(text, self.sidecar)

    def actual_size(self):
        return os.stat(self.path).st_blocks * 512

    def backing_users(self):
        """Files of the pool (and of the image's own directory) whose qcow2 header names this
        image as backing file."""
        target = os.path.realpath(self.path)
        users = []
        for directory in sorted(set([self.pool_dir, self.store_dir])):
            for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
                candidate = os.path.join(directory, entry)
                if candidate == self.path or not os.path.isfile(candidate):
                    continue
                backing = read_backing(candidate)
                if backing and os.path.realpath(os.path.join(directory, backing)) == target:
                    users.append(candidate)
        return users

    def inspect(self, src, declared):
        """Probe (no backing chain followed), then describe with the format fixed; check a qcow2."""
        probe = self._qemu_img_json(policy.info_args(self._qemu_img(), src, backing_chain=False))
        facts = policy.check_image(probe, declared, self.max_virtual_gb)
        chain = self._qemu_img_json(policy.info_args(self._qemu_img(), src, fmt=facts.format))
        facts = policy.check_image(chain, facts.format, self.max_virtual_gb)
        if facts.format == "qcow2":
            rc, out, err = self.host.run_command(policy.check_args(self._qemu_img(), src))
            policy.check_consistency(rc, out, err)
        return facts

    # ---- changing

    def import_from(self, src, facts, record):
        """Convert into a temporary file of the pool, verify it, then link image and record into place."""
        if not os.path.isdir(self.store_dir):
            os.makedirs(self.store_dir, 0o755)    # a tenant's first image; qemu reads it as another user
        tmp = self._temp_file(".kvmfleet-tmp")
        tmp_record = None
        linked = False
        try:
            self._run_qemu_img(policy.convert_args(self._qemu_img(), src, facts.format, tmp))
            made = self._qemu_img_json(policy.info_args(self._qemu_img(), tmp, fmt="qcow2"))
            policy.check_image(made, "qcow2", self.max_virtual_gb)
            os.chmod(tmp, 0o644)
            tmp_record = self._temp_file(".kvmfleet-tmp.json")
            with open(tmp_record, "w") as handle:
                json.dump(record, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.chmod(tmp_record, 0o644)
            _link(tmp, self.path)
            linked = True
            _link(tmp_record, self.sidecar)
        except BaseException:
            if linked:
                os.unlink(self.path)   # made by this run a moment ago; no image without its record
            raise
        finally:
            for path in (tmp, tmp_record):
                if path is not None and os.path.lexists(path):
                    os.unlink(path)

    def remove(self):
        """Delete the image (when there) and its record."""
        if os.path.lexists(self.path):
            os.unlink(self.path)
        os.unlink(self.sidecar)

    # ---- qemu-img and files

    def _temp_file(self, suffix):
        fd, path = tempfile.mkstemp(prefix=".%s." % self.name, suffix=suffix, dir=self.store_dir)
        os.close(fd)
        return path

    def _qemu_img(self):
        return self.host.get_bin_path("qemu-img", required=True)

    def _run_qemu_img(self, args):
        rc, out, err = self.host.run_command(args)
        if rc != 0:
            raise CommandFailed("%s failed (exit %d): %s" % (" ".join(args[:2]), rc, (err or out).strip()),
                                rc=rc, cmd=args)
        return out

    def _qemu_img_json(self, args):
        rc, out, err = self.host.run_command(args)
        if rc != 0:
            # An image qemu-img cannot open is refused as input, not reported as a host fault.
            raise ValidationError("qemu-img cannot read the image: %s" % (err or out).strip(), field="src", rc=rc)
        return policy.parse_info(out)


def _link(tmp, final):
    """Hard-link ``tmp`` to ``final``: atomic, and fails instead of overwriting."""
    try:
        os.link(tmp, final)
    except OSError as err:
        if err.errno == errno.EEXIST:
            raise Conflict("%s appeared while the image was imported; nothing was overwritten" % final, path=final)
        raise CommandFailed("cannot create %s: %s" % (final, err.strerror), path=final)
