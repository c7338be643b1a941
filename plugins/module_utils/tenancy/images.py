# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which images of the pool a tenant may boot, and where its own images live.

Layout of the image pool (``kvmfleet_image_dir``, shared storage):

    POOL/NAME                   the operator's files: base images, and the VMs' own disks and seeds
    POOL/tenants/TENANT/NAME    the images TENANT submitted (submit_vm.yml -e tenant=TENANT)

A tenant boots its own images and the public ones: those of the operator's files whose names
the inventory lists in ``kvmfleet_public_images`` (publishing is the operator's act; a VM's disk
beside them is never one). Anything else, another tenant's image above all, is "not found" in
the same words as an image that does not exist, so that names do not leak. The controller
resolves the request here (it cannot see the hosts' files); the vm module checks the real path
again on the host (``check_tenant_image_path``), through symlinks. Pure logic: imports neither
Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.image_policy import check_image_name
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import check_label

TENANTS_DIR = "tenants"


def tenant_image_dir(image_dir, tenant):
    """The directory of ``tenant``'s own images in the pool ``image_dir``."""
    check_label(tenant, "tenant")
    return posixpath.join(posixpath.normpath(image_dir), TENANTS_DIR, tenant)


def check_public_images(value):
    """``kvmfleet_public_images``: a list of image file names directly in the pool (None: none)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValidationError("kvmfleet_public_images: must be a list of image file names in the pool, got %r"
                              % (value,), field="kvmfleet_public_images", value=value)
    for name in value:
        if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or "\x00" in name:
            raise ValidationError("kvmfleet_public_images: %r is not a file name (a name directly in the pool, "
                                  "without a directory)" % (name,), field="kvmfleet_public_images", value=name)
        if name == TENANTS_DIR:
            raise ValidationError("kvmfleet_public_images: %r is the tenants' directory, not an image" % name,
                                  field="kvmfleet_public_images", value=name)
    return tuple(value)


def _not_found(image, tenant):
    return ValidationError("image %s: not found among tenant %s's images and the public ones" % (image, tenant),
                           field="image", value=image)


def resolve_tenant_image(image_dir, image, tenant, public_images=()):
    """The pool path of the image ``tenant`` asks for.

    ``image`` is an image's name (the tenant's own, or a public one; a public name wins), or its
    path, absolute or relative to the pool, in the tenant's directory or among the public ones.
    Raises ValidationError ("not found", whatever the reason) for anything else.
    """
    check_label(tenant, "tenant")
    public = check_public_images(public_images)
    if not isinstance(image, str) or not image.strip() or "\x00" in image:
        raise _not_found(image, tenant)
    pool = posixpath.normpath(image_dir)
    own = tenant_image_dir(pool, tenant)
    if "/" not in image:
        if image in public:
            return posixpath.join(pool, image)
        try:
            check_image_name(image)
        except ValidationError:
            raise _not_found(image, tenant)
        return posixpath.join(own, image)
    path = posixpath.normpath(image if posixpath.isabs(image) else posixpath.join(pool, image))
    directory, name = posixpath.split(path)
    if directory == own and name not in ("", ".", ".."):
        return path
    if directory == pool and name in public:
        return path
    raise _not_found(image, tenant)


def check_tenant_image_path(pool_dir, resolved, tenant, shown=None):
    """On the host: refuse an image whose real path (``resolved``, symlinks followed) lies in
    another tenant's directory, or anywhere under the tenants' directory but ``tenant``'s own."""
    check_label(tenant, "tenant")
    tenants = posixpath.join(posixpath.normpath(pool_dir), TENANTS_DIR)
    own = posixpath.join(tenants, tenant)
    path = posixpath.normpath(resolved)
    inside_tenants = posixpath.commonpath([tenants, path]) == tenants
    if inside_tenants and posixpath.commonpath([own, path]) != own:
        raise _not_found(shown or posixpath.basename(path), tenant)
    return path


def owner_of_image(image_dir, path):
    """The tenant whose directory holds ``path``, or None (the operator's)."""
    tenants = posixpath.join(posixpath.normpath(image_dir), TENANTS_DIR)
    path = posixpath.normpath(path)
    if posixpath.commonpath([tenants, path]) != tenants or path == tenants:
        return None
    return posixpath.relpath(path, tenants).split("/")[0]


def image_listing(image_dir, files, tenant=None):
    """The image store's listing [{tenant, name, size_gb}] from ``files`` ([{path, size}], bytes):
    the images in the tenants' directories (the records ``*.kvmfleet.json`` left out), those of
    ``tenant`` only when given. size_gb rounds up: a quota counts whole GiB."""
    listing, seen = [], set()
    for item in files or ():
        path = posixpath.normpath((item or {}).get("path") or "/")
        owner = owner_of_image(image_dir, path)
        if owner is None or path.endswith(".kvmfleet.json") or (tenant is not None and owner != tenant) or path in seen:
            continue
        seen.add(path)     # every host of the shared pool lists the same files
        size = int((item or {}).get("size") or 0)
        listing.append(dict(tenant=owner, name=posixpath.basename(path), size_gb=-(-size // (1 << 30))))
    return sorted(listing, key=lambda entry: (entry["tenant"], entry["name"]))
