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

import errno
import hashlib
import json
import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmfleet.iaas.plugins.module_utils import image_policy as policy
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, KvmfleetError, ValidationError

# keys fail_json sets itself; an error's details must not overwrite them (as base_module)
_RESERVED_RESULT_KEYS = frozenset(("msg", "failed", "changed", "exception", "invocation", "warnings"))
_CHUNK = 1024 * 1024


class CommandFailed(KvmfleetError):
    """qemu-img failed for a reason other than the policy."""


class ImageModule:
    """The image module. No libvirt connection, hence not a KvmfleetModule (which opens one)."""

    argument_spec = dict(
        name=dict(type="str", required=True),
        src=dict(type="path"),
        pool_dir=dict(type="path", default="/srv/kvmfleet/images"),
        format=dict(type="str", default="auto", choices=list(policy.DECLARED_FORMATS)),
        max_virtual_gb=dict(type="int", default=policy.DEFAULT_MAX_VIRTUAL_GB),
        checksum=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )

    def __init__(self, module=None):
        self.module = module or AnsibleModule(argument_spec=self.argument_spec, supports_check_mode=True)
        self.params = self.module.params

    # ---- entry point

    def run(self):
        """Do the work; return the result for exit_json. Raises KvmfleetError to fail."""
        params = self.params
        self.name = policy.check_image_name(params["name"])
        self.pool_dir = params["pool_dir"]
        if not os.path.isdir(self.pool_dir):
            raise ValidationError("pool directory %s does not exist" % self.pool_dir, field="pool_dir",
                                  value=self.pool_dir)
        self.path = os.path.join(self.pool_dir, self.name)
        self.sidecar = os.path.join(self.pool_dir, policy.sidecar_name(self.name))
        record = self.read_record()
        if params["state"] == "absent":
            return self.absent(record)
        return self.present(record)

    @classmethod
    def execute(cls):
        """main(): typed errors become fail_json here and only here."""
        instance = cls()
        try:
            result = instance.run()
        except KvmfleetError as err:
            details = dict((k, v) for k, v in err.details.items() if k not in _RESERVED_RESULT_KEYS)
            instance.module.fail_json(msg=str(err), **details)
            return
        result.setdefault("changed", False)
        instance.module.exit_json(**result)

    # ---- present

    def present(self, record):
        expected = policy.parse_checksum(self.params["checksum"])
        if record is not None or os.path.lexists(self.path):
            return self.existing(record, expected)
        src = self.params["src"]
        if src is None:
            raise ValidationError("image %s is not in %s yet; src is required to import it" % (self.name, self.pool_dir),
                                  field="src")
        sha = self.source_sha256(src, expected)
        facts = self.inspect(src)
        new = policy.sidecar_record(self.name, sha, facts, self.params["format"])
        actual = None
        if not self.module.check_mode:
            self.import_image(src, facts, new)
            actual = os.stat(self.path).st_blocks * 512
        result = dict(changed=True, steps=["import"], image=self.describe(new, actual))
        return self.with_diff(result, None, new)

    def existing(self, record, expected):
        """The name is taken: fine if it is our import of the same source, else a Conflict."""
        if record is None:
            raise Conflict("image %s exists in %s without a kvmfleet record (%s): kvmfleet did not import it and "
                           "leaves it untouched; pick another name" % (self.name, self.pool_dir, self.sidecar),
                           path=self.path)
        if not os.path.isfile(self.path):
            raise Conflict("the record %s exists but its image %s does not; check and remove the record by hand"
                           % (self.sidecar, self.path), path=self.path)
        src = self.params["src"]
        sha = self.source_sha256(src, expected) if src is not None else expected
        recorded = record["source_sha256"]
        if sha is not None and sha != recorded:
            raise Conflict("image %s exists, imported from a source with sha256 %s; this source has sha256 %s. "
                           "Nothing was changed: pick another name, or remove the image (state=absent) first"
                           % (self.name, recorded, sha), path=self.path, recorded_sha256=recorded, sha256=sha)
        result = dict(changed=False, steps=[], image=self.describe(record, os.stat(self.path).st_blocks * 512))
        return self.with_diff(result, record, record)

    def source_sha256(self, src, expected):
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

    def inspect(self, src):
        """Probe (no backing chain followed), then describe with the format fixed; check qcow2."""
        declared, limit = self.params["format"], self.params["max_virtual_gb"]
        probe = self.qemu_img_json(policy.info_args(self.qemu_img(), src, backing_chain=False))
        facts = policy.check_image(probe, declared, limit)
        chain = self.qemu_img_json(policy.info_args(self.qemu_img(), src, fmt=facts.format))
        facts = policy.check_image(chain, facts.format, limit)
        if facts.format == "qcow2":
            rc, out, err = self.module.run_command(policy.check_args(self.qemu_img(), src))
            policy.check_consistency(rc, out, err)
        return facts

    def import_image(self, src, facts, record):
        """Convert into a temporary file of the pool, verify it, then link image and record into place."""
        tmp = self.temp_file(".kvmfleet-tmp")
        tmp_record = None
        linked = False
        try:
            self.run_qemu_img(policy.convert_args(self.qemu_img(), src, facts.format, tmp))
            made = self.qemu_img_json(policy.info_args(self.qemu_img(), tmp, fmt="qcow2"))
            policy.check_image(made, "qcow2", self.params["max_virtual_gb"])
            os.chmod(tmp, 0o644)
            tmp_record = self.temp_file(".kvmfleet-tmp.json")
            with open(tmp_record, "w") as handle:
                json.dump(record, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.chmod(tmp_record, 0o644)
            self.link(tmp, self.path)
            linked = True
            self.link(tmp_record, self.sidecar)
        except BaseException:
            if linked:
                os.unlink(self.path)   # made by this run a moment ago; no record without it
            raise
        finally:
            for path in (tmp, tmp_record):
                if path is not None and os.path.lexists(path):
                    os.unlink(path)

    def temp_file(self, suffix):
        fd, path = tempfile.mkstemp(prefix=".%s." % self.name, suffix=suffix, dir=self.pool_dir)
        os.close(fd)
        return path

    def link(self, tmp, final):
        """Hard-link ``tmp`` to ``final``: atomic, and fails instead of overwriting."""
        try:
            os.link(tmp, final)
        except OSError as err:
            if err.errno == errno.EEXIST:
                raise Conflict("%s appeared while the image was imported; nothing was overwritten" % final,
                               path=final)
            raise CommandFailed("cannot create %s: %s" % (final, err.strerror), path=final)

    # ---- absent

    def absent(self, record):
        exists = os.path.lexists(self.path)
        if record is None:
            if exists:
                raise Conflict("image %s has no kvmfleet record (%s): kvmfleet did not import it and does not "
                               "delete it" % (self.path, self.sidecar), path=self.path)
            result = dict(changed=False, steps=[], image=self.describe(None))
            return self.with_diff(result, None, None)
        users = self.backing_users() if exists else []
        if users:
            raise Conflict("image %s is the backing file of %s; remove those first" % (self.path, ", ".join(users)),
                           path=self.path, users=users)
        if not self.module.check_mode:
            if exists:
                os.unlink(self.path)
            os.unlink(self.sidecar)
        gone = dict(self.describe(None), sha256=record["source_sha256"])
        result = dict(changed=True, steps=["remove"], image=gone)
        return self.with_diff(result, record, None)

    def backing_users(self):
        """Files of the pool whose qcow2 header names this image as backing file."""
        target = os.path.realpath(self.path)
        users = []
        for entry in sorted(os.listdir(self.pool_dir)):
            candidate = os.path.join(self.pool_dir, entry)
            if candidate == self.path or not os.path.isfile(candidate):
                continue
            backing = self.read_backing(candidate)
            if backing and os.path.realpath(os.path.join(self.pool_dir, backing)) == target:
                users.append(candidate)
        return users

    @staticmethod
    def read_backing(path):
        try:
            with open(path, "rb") as handle:
                span = policy.qcow2_backing_span(handle.read(policy.QCOW2_HEADER_PREFIX))
                if span is None:
                    return None
                handle.seek(span[0])
                return handle.read(span[1]).decode("utf-8", "replace")
        except (IOError, OSError):
            return None

    # ---- helpers

    def read_record(self):
        if not os.path.lexists(self.sidecar):
            return None
        try:
            with open(self.sidecar) as handle:
                text = handle.read()
        except (IOError, OSError) as err:
            raise ValidationError("cannot read %s: %s" % (self.sidecar, err.strerror), path=self.sidecar)
        return policy.parse_sidecar(text, self.sidecar)

    def qemu_img(self):
        return self.module.get_bin_path("qemu-img", required=True)

    def run_qemu_img(self, args):
        rc, out, err = self.module.run_command(args)
        if rc != 0:
            raise CommandFailed("%s failed (exit %d): %s" % (" ".join(args[:2]), rc, (err or out).strip()),
                                rc=rc, cmd=args)
        return out

    def qemu_img_json(self, args):
        rc, out, err = self.module.run_command(args)
        if rc != 0:
            # An image qemu-img cannot open is refused as input, not reported as a host fault.
            raise ValidationError("qemu-img cannot read the image: %s" % (err or out).strip(), field="src", rc=rc)
        return policy.parse_info(out)

    def describe(self, record, actual_size=None):
        image = dict(path=self.path, sidecar=self.sidecar, state="absent" if record is None else "present")
        if record is not None:
            size = record["virtual_size"]
            image.update(format_detected=record["source_format"], virtual_size=size,
                         virtual_size_gb=-(-size // policy.GIB), actual_size=actual_size,
                         sha256=record["source_sha256"])
        return image

    def with_diff(self, result, before, after):
        if self.module._diff:
            result["diff"] = dict(before=_diff_view(self.path, before), after=_diff_view(self.path, after),
                                  before_header=self.sidecar, after_header=self.sidecar)
        return result


def _diff_view(path, record):
    if record is None:
        return dict(image=path, state="absent")
    return dict(image=path, state="present", source_sha256=record["source_sha256"],
                source_format=record["source_format"], virtual_size=record["virtual_size"])


def main():
    ImageModule.execute()


if __name__ == "__main__":
    main()
