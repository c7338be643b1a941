#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image
short_description: Import a customer's disk image into the image pool, validated
version_added: "0.1.0"
description:
  - Validates an untrusted disk image with C(qemu-img info) and C(qemu-img check) and imports it
    into the pool directory as a fresh, self-contained qcow2 made by C(qemu-img convert).
  - Refused with a message naming the problem, before anything is written, are a backing file or
    backing chain, a qcow2 external data file, formats other than qcow2 and raw, encrypted images,
    a virtual size over I(max_virtual_gb), a format that is not the declared I(format), a
    corrupt qcow2, a source that does not match I(checksum).
  - The image is converted into a hidden temporary file in the pool and then linked to its name,
    which fails rather than overwrite an image that appeared meanwhile; the temporary file is
    removed whatever happens.
  - A record C(NAME.kvmfleet.json) next to the image keeps the source's sha256 and what was
    checked. Running again with a source of the same sha256 changes nothing; a different source
    under the same name is refused and nothing is changed.
  - C(state=absent) removes the image and its record, only when the record exists (an image
    kvmfleet did not import is never deleted) and no other qcow2 of the pool has the image as its
    backing file.
  - Needs no libvirt; runs C(qemu-img) on the host. See docs/submit.md.
options:
  name:
    description:
      - File name of the image in the pool, C([a-z0-9][a-z0-9._-]*.qcow2), no slashes.
      - Names of the form C(VMNAME.qcow2) (stem of letters, digits and dashes only) are refused,
        because the vm module gives a VM's own disk that name in the same pool; use for example
        C(web1.image.qcow2).
    type: str
    required: true
  src:
    description:
      - Path on the target host of the uploaded image file.
      - Required to import. When the image is already imported it may be omitted; then only
        I(checksum), if given, is compared with the record.
    type: path
  pool_dir:
    description: Directory of the image pool (shared storage on a fleet).
    type: path
    default: /srv/kvmfleet/images
  format:
    description:
      - Format of the source. C(auto) accepts what C(qemu-img) detects (qcow2 or raw); C(qcow2) or
        C(raw) refuse an image detected as anything else.
    type: str
    choices: [auto, qcow2, raw]
    default: auto
  max_virtual_gb:
    description: Largest virtual size accepted, in GiB.
    type: int
    default: 2048
  checksum:
    description:
      - C(sha256:HEX) the source must match. Without I(src) it is compared with the record of the
        imported image.
    type: str
  state:
    description: C(present) imports the image, C(absent) removes an image kvmfleet imported.
    type: str
    choices: [present, absent]
    default: present
  tenant:
    description:
      - The tenant that owns the image. It is kept in the tenant's own directory of the pool,
        C(POOL_DIR/tenants/TENANT/) (made on its first image), where only that tenant (and the
        operator) can boot it; see docs/tenancy.md. Left out, the image is the operator's, in the pool itself.
    type: str
requirements:
  - qemu-img (qemu-utils) on the target host
attributes:
  check_mode:
    support: full
    description: Validates the source with qemu-img and reports what would be done; writes nothing.
  diff_mode:
    support: full
    description: Shows the image record (present or absent, source sha256) before and after.
author:
  - kvmfleet developers (@kvmfleet)
"""

EXAMPLES = r"""
- name: Import an uploaded image
  kvmfleet.iaas.image:
    name: web1.image.qcow2
    src: /var/lib/kvmfleet/incoming/web1.image.qcow2.upload
    checksum: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  register: imported

- name: Remove it again (only images kvmfleet imported)
  kvmfleet.iaas.image:
    name: web1.image.qcow2
    state: absent
"""

RETURN = r"""
steps:
  description: What was done (or would be in check mode).
  returned: always
  type: list
  elements: str
  sample: [import]
image:
  description: The image after the task.
  returned: always
  type: dict
  contains:
    path:
      description: Path of the image in the pool.
      type: str
      returned: always
      sample: /srv/kvmfleet/images/web1.image.qcow2
    state:
      description: C(present) or C(absent).
      type: str
      returned: always
    sidecar:
      description: Path of the record kept next to the image.
      type: str
      returned: always
    format_detected:
      description: Format qemu-img detected in the source (qcow2 or raw); the pool copy is always qcow2.
      type: str
      returned: when present
    virtual_size_gb:
      description: Virtual size of the image in GiB, rounded up.
      type: int
      returned: when present
    virtual_size:
      description: Virtual size of the image in bytes.
      type: int
      returned: when present
    actual_size:
      description: Bytes the pool copy occupies on disk; null in check mode before an import.
      type: int
      returned: when present
    sha256:
      description: sha256 of the source the image was imported from (hex).
      type: str
      returned: when present, and when removed
"""

import os

from ansible_collections.kvmfleet.iaas.plugins.module_utils import image_policy as policy
from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.image_import import PoolImage, source_sha256


class ImageModule(KvmfleetModule):
    """Decides what the task asks of one image; ``PoolImage`` carries it out."""

    uses_libvirt = False
    argument_spec = dict(
        name=dict(type="str", required=True),
        src=dict(type="path"),
        pool_dir=dict(type="path", default="/srv/kvmfleet/images"),
        format=dict(type="str", default="auto", choices=list(policy.DECLARED_FORMATS)),
        max_virtual_gb=dict(type="int", default=policy.DEFAULT_MAX_VIRTUAL_GB),
        checksum=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        tenant=dict(type="str"),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        params = self.params
        self.image = PoolImage(self.module, params["pool_dir"], params["name"], params["max_virtual_gb"],
                               tenant=params["tenant"])
        record = self.image.read_record()
        if params["state"] == "absent":
            return self.absent(record)
        return self.present(record)

    def present(self, record):
        image, src = self.image, self.params["src"]
        expected = policy.parse_checksum(self.params["checksum"])
        if record is not None or os.path.lexists(image.path):
            return self.existing(record, expected)
        if src is None:
            raise ValidationError("image %s is not in %s yet; src is required to import it"
                                  % (image.name, image.pool_dir), field="src")
        sha = source_sha256(src, expected)
        facts = image.inspect(src, self.params["format"])
        new = policy.sidecar_record(image.name, sha, facts, self.params["format"])
        actual = None
        if not self.check_mode:
            image.import_from(src, facts, new)
            actual = image.actual_size()
        return self.result(True, ["import"], None, new, actual)

    def existing(self, record, expected):
        """The name is taken: fine if it is our import of the same source, else a Conflict."""
        image, src = self.image, self.params["src"]
        if record is None:
            raise Conflict("image %s exists in %s without a kvmfleet record (%s): kvmfleet did not import it and "
                           "leaves it untouched; pick another name" % (image.name, image.pool_dir, image.sidecar),
                           path=image.path)
        if not os.path.isfile(image.path):
            raise Conflict("the record %s exists but its image %s does not; check and remove the record by hand"
                           % (image.sidecar, image.path), path=image.path)
        sha = source_sha256(src, expected) if src is not None else expected
        recorded = record["source_sha256"]
        if sha is not None and sha != recorded:
            raise Conflict("image %s exists, imported from a source with sha256 %s; this source has sha256 %s. "
                           "Nothing was changed: pick another name, or remove the image (state=absent) first"
                           % (image.name, recorded, sha), path=image.path, recorded_sha256=recorded, sha256=sha)
        return self.result(False, [], record, record, image.actual_size())

    def absent(self, record):
        image = self.image
        exists = os.path.lexists(image.path)
        if record is None:
            if exists:
                raise Conflict("image %s has no kvmfleet record (%s): kvmfleet did not import it and does not "
                               "delete it" % (image.path, image.sidecar), path=image.path)
            return self.result(False, [], None, None)
        users = image.backing_users() if exists else []
        if users:
            raise Conflict("image %s is the backing file of %s; remove those first" % (image.path, ", ".join(users)),
                           path=image.path, users=users)
        if not self.check_mode:
            image.remove()
        result = self.result(True, ["remove"], record, None)
        result["image"]["sha256"] = record["source_sha256"]
        return result

    def result(self, changed, steps, before, after, actual_size=None):
        """The task's result: the image as ``after`` describes it, and the record diff."""
        image = dict(path=self.image.path, sidecar=self.image.sidecar, state="absent" if after is None else "present")
        if after is not None:
            size = after["virtual_size"]
            image.update(format_detected=after["source_format"], virtual_size=size,
                         virtual_size_gb=-(-size // policy.GIB), actual_size=actual_size,
                         sha256=after["source_sha256"])
        return self.with_diff(dict(changed=changed, steps=steps, image=image), self.diff_view(before),
                              self.diff_view(after), header=self.image.sidecar)

    def diff_view(self, record):
        if record is None:
            return dict(image=self.image.path, state="absent")
        return dict(image=self.image.path, state="present", source_sha256=record["source_sha256"],
                    source_format=record["source_format"], virtual_size=record["virtual_size"])


def main():
    ImageModule.execute()


if __name__ == "__main__":
    main()
