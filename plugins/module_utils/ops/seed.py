# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A VM's cloud-init seed on the hypervisor: the NoCloud ``cidata`` ISO beside its disk in the
image store, made with cloud-image-utils' ``cloud-localds`` and replaced in place when its
documents change (docs/cloud-init.md).

The ISO is written into the pool's directory (a temporary name, then renamed, so a VM never sees
half a seed), as libvirt itself writes the pool's volumes; the pool is refreshed afterwards.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import CommandFailed, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import SEED_SUFFIX

SEED_TOOL = "cloud-localds"
# Only the host's own users should read it (user-data may hold site configuration); libvirt's
# dynamic ownership hands it to the qemu process when the VM starts.
SEED_MODE = 0o600


def seed_path(pool_dir, vm_name):
    return os.path.join(pool_dir, vm_name + SEED_SUFFIX)


class SeedMaker:
    """Writes and removes seeds. ``run_command`` and ``get_bin_path`` are AnsibleModule's."""

    def __init__(self, run_command, get_bin_path):
        self.run_command = run_command
        self.get_bin_path = get_bin_path

    def tool(self):
        path = self.get_bin_path(SEED_TOOL)
        if not path:
            raise ValidationError("%s (Debian package cloud-image-utils) is not installed on this hypervisor; "
                                  "onboard it with the kvm role, which installs it" % SEED_TOOL, missing=SEED_TOOL)
        return path

    def write(self, path, documents):
        """Make the seed of ``documents`` (a cloudinit.seed.SeedDocuments) at ``path``."""
        tool = self.tool()
        work = tempfile.mkdtemp(prefix=".kvmfleet-seed-", dir=os.path.dirname(path))
        try:
            files = documents.files()
            for name, text in files.items():
                with open(os.path.join(work, name), "w") as handle:
                    handle.write(text)
            image = os.path.join(work, "seed.iso")
            argv = [tool]
            if "network-config" in files:
                argv.append("--network-config=%s" % os.path.join(work, "network-config"))
            argv += [image, os.path.join(work, "user-data"), os.path.join(work, "meta-data")]
            rc, out, err = self.run_command(argv)
            if rc != 0:
                raise CommandFailed("%s failed (rc %d): %s" % (SEED_TOOL, rc, (err or out).strip()),
                                    command=argv, rc=rc)
            os.chmod(image, SEED_MODE)
            os.replace(image, path)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def remove(path):
        """Remove the seed at ``path``; whether there was one."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
