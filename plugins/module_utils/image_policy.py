# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy check of customer-submitted disk images.

A customer's disk image is untrusted input that QEMU will open on a hypervisor. Its header can
make QEMU open other host files (a backing file, an external data file), it can be in a format
whose probing or opening reaches further (vmdk extents, network protocols), and a raw image can
carry a qcow2 header that a later format probe would obey. This module decides, from the JSON of
``qemu-img info --output=json``, whether an image may be imported, and builds the qemu-img
argument lists the import runs (argument lists, never shell strings). Importing converts the
image to a fresh, self-contained qcow2 in the pool, so nothing the source header said survives.

Pure logic: imports neither Ansible nor libvirt. See docs/submit.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import struct
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

GIB = 1024 ** 3
FORMATS = ("qcow2", "raw")
DECLARED_FORMATS = ("auto",) + FORMATS
DEFAULT_MAX_VIRTUAL_GB = 2048
SIDECAR_SUFFIX = ".kvmfleet.json"
SIDECAR_SCHEMA = "kvmfleet.iaas/image/1"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*\.qcow2$")
# The vm module names a VM's own disk VMNAME.qcow2 in the same pool (vmplan.volume_name), with
# VMNAME in [a-z0-9-]; an image named like that would take the disk name of a future VM.
_VM_DISK_RE = re.compile(r"^[a-z0-9-]+\.qcow2$")
_SHA256_RE = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_QCOW2_MAGIC = b"QFI\xfb"
# qemu-img check exit codes (qemu-img(1)): 0 consistent, 2 corrupted, 3 leaked clusters only
_CHECK_OK_CODES = (0, 3)

# What check_image verifies, recorded in the sidecar so an operator can see what was checked.
CHECKS = ("single-layer", "format-allowed", "format-as-declared", "no-backing-file", "no-data-file",
          "not-encrypted", "virtual-size-limit")


@dataclass(frozen=True)
class ImageFacts:
    """What the accepted image is: detected format, sizes in bytes and GiB (rounded up)."""

    format: str
    virtual_size: int
    actual_size: Optional[int]
    checked: Tuple[str, ...] = CHECKS

    @property
    def virtual_size_gb(self):
        """Virtual size in whole GiB, rounded up (the unit of disk_gb)."""
        return -(-self.virtual_size // GIB)


# ---- input checks


def check_image_name(name):
    """Validate an image file name in the pool; return it.

    ``[a-z0-9][a-z0-9._-]*.qcow2``: no slashes, no leading dot (temporary files start with one),
    and not of the form ``VMNAME.qcow2``, which is the name of a VM's own disk in the same pool.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise ValidationError("image name %r must match [a-z0-9][a-z0-9._-]*.qcow2 (a file name in the pool, "
                              "no slashes, no '..')" % (name,), field="name", value=name)
    if _VM_DISK_RE.fullmatch(name):
        raise ValidationError("image name %s has the form VMNAME.qcow2 that the vm module uses for a VM's own "
                              "disk in the same pool; put a dot in the stem, e.g. %s.image.qcow2"
                              % (name, name[:-len(".qcow2")]), field="name", value=name)
    return name


def check_declared_format(declared):
    """Validate the declared format (auto, qcow2, raw); return it."""
    if declared not in DECLARED_FORMATS:
        raise ValidationError("format %r is not one of %s" % (declared, ", ".join(DECLARED_FORMATS)),
                              field="format", value=declared)
    return declared


def parse_checksum(checksum):
    """``sha256:HEX`` -> lower-case hex digest; None stays None."""
    if checksum is None:
        return None
    match = _SHA256_RE.fullmatch(checksum.strip()) if isinstance(checksum, str) else None
    if not match:
        raise ValidationError("checksum must be sha256: followed by 64 hex digits", field="checksum",
                              value=checksum)
    return match.group(1).lower()


def sidecar_name(image_name):
    """File name of the record kept next to an imported image."""
    return image_name + SIDECAR_SUFFIX


# ---- qemu-img info


def parse_info(text):
    """The stdout of ``qemu-img info --output=json`` -> list of layer dicts."""
    try:
        return layers(json.loads(text))
    except ValueError as err:
        raise ValidationError("qemu-img info did not return JSON: %s" % err, field="src")


def layers(info):
    """Normalise qemu-img info JSON: a list (``--backing-chain``) or one dict -> non-empty list."""
    chain = [info] if isinstance(info, dict) else info
    if not isinstance(chain, list) or not chain or not all(isinstance(layer, dict) for layer in chain):
        raise ValidationError("qemu-img info returned no image description", field="src")
    return chain


def check_image(info, declared_format="auto", max_virtual_gb=DEFAULT_MAX_VIRTUAL_GB):
    """Accept an untrusted image described by ``info`` or raise ValidationError.

    ``info`` is the parsed JSON of ``qemu-img info --output=json [--backing-chain]``. Returns
    ``ImageFacts`` of the (single) layer.
    """
    chain = layers(info)
    check_declared_format(declared_format)
    _check_single_layer(chain)
    top = chain[0]
    detected = _check_format(top, declared_format)
    _check_no_backing(top)
    _check_no_data_file(top)
    _check_not_encrypted(top)
    virtual_size = _check_virtual_size(top, max_virtual_gb)
    actual = top.get("actual-size")
    return ImageFacts(format=detected, virtual_size=virtual_size,
                      actual_size=actual if isinstance(actual, int) and not isinstance(actual, bool) else None)


def _check_single_layer(chain):
    """A backing chain of more than one layer means the image reads another file."""
    if len(chain) > 1:
        names = [layer.get("filename") for layer in chain[1:]]
        raise ValidationError("the image has a backing chain of %d layers (%s); a submitted image must be "
                              "self-contained" % (len(chain), ", ".join(str(n) for n in names)),
                              field="src", refused="backing-chain")


def _check_no_backing(layer):
    """A backing file named in the header is a host path QEMU would open and read."""
    for key in ("backing-filename", "full-backing-filename"):
        if layer.get(key):
            raise ValidationError("the image names a backing file %r; a backing file would make QEMU read "
                                  "another file of the host, so a submitted image must be self-contained "
                                  "(flatten it with qemu-img convert first)" % layer[key],
                                  field="src", refused="backing-file", backing_file=layer[key])


def _check_no_data_file(layer):
    """A qcow2 external data file is a host path QEMU would open for the guest's data."""
    specific = layer.get("format-specific") or {}
    data = specific.get("data") if isinstance(specific, dict) else None
    data_file = data.get("data-file") if isinstance(data, dict) else None
    if data_file:
        raise ValidationError("the image uses an external data file %r; QEMU would read and write that host "
                              "file as the guest's disk" % data_file, field="src", refused="data-file",
                              data_file=data_file)


def _check_format(layer, declared):
    """Only qcow2 and raw; the detected format must be the declared one (unless auto)."""
    detected = layer.get("format")
    if detected not in FORMATS:
        raise ValidationError("image format %r is not allowed (only %s)" % (detected, ", ".join(FORMATS)),
                              field="format", refused="format", format=detected)
    if declared != "auto" and detected != declared:
        raise ValidationError("the image was declared %s but qemu-img detects %s; refusing an image that is "
                              "not what it claims (a raw disk starting with a qcow2 header would be read as "
                              "qcow2 by a format probe)" % (declared, detected),
                              field="format", refused="format-mismatch", format=detected, declared=declared)
    return detected


def _check_not_encrypted(layer):
    """Encrypted images need secrets on the host and cannot be converted or inspected."""
    specific = layer.get("format-specific") or {}
    data = specific.get("data") if isinstance(specific, dict) else None
    if layer.get("encrypted") or (isinstance(data, dict) and data.get("encrypt")):
        raise ValidationError("the image is encrypted; submit an unencrypted image (encrypt inside the guest)",
                              field="src", refused="encrypted")


def _check_virtual_size(layer, max_virtual_gb):
    """The virtual size must be a positive integer of at most ``max_virtual_gb`` GiB."""
    size = layer.get("virtual-size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValidationError("qemu-img reports no valid virtual size (%r)" % (size,), field="src")
    if size > max_virtual_gb * GIB:
        raise ValidationError("the image's virtual size is %.1f GiB, more than the %d GiB allowed"
                              % (size / float(GIB), max_virtual_gb), field="src", refused="virtual-size",
                              virtual_size=size)
    return size


# ---- qemu-img check


def check_consistency(rc, stdout, stderr=""):
    """Judge ``qemu-img check --output=json``: corruption or an error refuses; leaks are harmless."""
    if rc in _CHECK_OK_CODES:
        return
    detail = ""
    try:
        report = json.loads(stdout)
        detail = "%s corruptions, %s check errors" % (report.get("corruptions", "?"), report.get("check-errors", "?"))
    except (ValueError, AttributeError):
        detail = (stderr or stdout or "").strip()
    raise ValidationError("qemu-img check refuses the image (exit %d): %s" % (rc, detail), field="src",
                          refused="consistency")


# ---- qemu-img argument lists


def info_args(qemu_img, path, fmt=None, backing_chain=True):
    """``qemu-img info --output=json [--backing-chain] -U [-f FMT] PATH`` as a list.

    Probe first with ``backing_chain=False``: following the chain opens the files an untrusted
    header names (a FIFO there hangs qemu-img). Once the format is known pass ``fmt`` so QEMU does
    not probe again.
    """
    args = [qemu_img, "info", "--output=json"]
    if backing_chain:
        args.append("--backing-chain")
    args.append("-U")
    if fmt is not None:
        args += ["-f", _known_format(fmt)]
    return args + [path]


def check_args(qemu_img, path):
    """``qemu-img check --output=json -U -f qcow2 PATH`` (qcow2 only: raw has no metadata)."""
    return [qemu_img, "check", "--output=json", "-U", "-f", "qcow2", path]


def convert_args(qemu_img, src, fmt, dest):
    """``qemu-img convert -q -f FMT -O qcow2 SRC DEST``: a fresh self-contained qcow2."""
    return [qemu_img, "convert", "-q", "-f", _known_format(fmt), "-O", "qcow2", src, dest]


def _known_format(fmt):
    if fmt not in FORMATS:
        raise ValidationError("format %r is not one of %s" % (fmt, ", ".join(FORMATS)), field="format", value=fmt)
    return fmt


# ---- qcow2 header


QCOW2_HEADER_PREFIX = 20
_BACKING_NAME_MAX = 1023   # qemu refuses longer backing file names
_CLUSTER_MAX = 2 * 1024 * 1024  # qemu refuses a backing name offset beyond the first cluster


def qcow2_backing_span(header):
    """(offset, size) of the backing file name from a qcow2 header's first 20 bytes, or None.

    qcow2 spec: magic at 0, backing_file_offset u64 at 8, backing_file_size u32 at 16. Reading the
    header directly opens nothing the header names.
    """
    if len(header) < QCOW2_HEADER_PREFIX or header[:4] != _QCOW2_MAGIC:
        return None
    offset, size = struct.unpack(">QI", header[8:20])
    if not offset or not size or size > _BACKING_NAME_MAX or offset > _CLUSTER_MAX:
        return None
    return offset, size


def qcow2_backing_file(data):
    """The backing file named by a qcow2 file whose first bytes are ``data``, or None.

    ``data`` must reach the end of the name (see ``qcow2_backing_span``). Used to find images that
    other pool files build on before one is deleted.
    """
    span = qcow2_backing_span(data[:QCOW2_HEADER_PREFIX])
    if span is None or span[0] + span[1] > len(data):
        return None
    return data[span[0]:span[0] + span[1]].decode("utf-8", "replace")


# ---- sidecar


def sidecar_record(name, source_sha256, facts, declared_format):
    """The JSON-able record kept as NAME.kvmfleet.json: where the image came from and what was checked."""
    return {
        "schema": SIDECAR_SCHEMA,
        "name": name,
        "source_sha256": source_sha256,
        "source_format": facts.format,
        "declared_format": declared_format,
        "virtual_size": facts.virtual_size,
        "checked": list(facts.checked) + (["qemu-img-check"] if facts.format == "qcow2" else []),
        "converted_to": "qcow2",
    }


def parse_sidecar(text, path):
    """A sidecar's JSON -> dict; anything else is an error naming the file."""
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("schema") != SIDECAR_SCHEMA or not record.get("source_sha256"):
        raise ValidationError("%s is not a kvmfleet image record; fix or remove it by hand" % path, field="name",
                              path=path)
    return record
