"""Which images a tenant may boot, where its own live, and its image quota (tenancy/images.py,
tenancy/quota.py check_image_quota, fleetview.prepare_vm with a tenant). Pure logic."""
import os

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.fleetview import prepare_vm
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy import images as tenant_images
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import QuotaExceeded, check_image_quota

POOL = "/srv/kvmfleet/images"
PUBLIC = ["debian.qcow2", "base.qcow2"]
NOT_FOUND = "image %s: not found among tenant acme's images and the public ones"


@pytest.mark.parametrize("asked, path", [
    ("shop.image.qcow2", POOL + "/tenants/acme/shop.image.qcow2"),           # its own, by name
    ("debian.qcow2", POOL + "/debian.qcow2"),                                 # a public one, by name
    (POOL + "/tenants/acme/shop.image.qcow2", POOL + "/tenants/acme/shop.image.qcow2"),   # its own, by path
    ("tenants/acme/shop.image.qcow2", POOL + "/tenants/acme/shop.image.qcow2"),
    (POOL + "/debian.qcow2", POOL + "/debian.qcow2"),
    (POOL + "//tenants/./acme/x.image.qcow2", POOL + "/tenants/acme/x.image.qcow2"),
])
def test_a_tenant_boots_its_own_images_and_the_public_ones(asked, path):
    assert tenant_images.resolve_tenant_image(POOL, asked, "acme", PUBLIC) == path


@pytest.mark.parametrize("asked", [
    POOL + "/tenants/initech/secret.image.qcow2",    # another tenant's, by path
    "tenants/initech/secret.image.qcow2",
    "tenants/acme/../initech/secret.image.qcow2",     # out of its directory through ..
    "../images/tenants/initech/secret.image.qcow2",
    POOL + "/web1.qcow2",                             # a VM's disk beside the public images
    "web1.qcow2",                                     # a VM disk's name is no image name
    POOL + "/secret.raw",                             # the operator's file that is not published
    "/etc/passwd", "..", ".", "tenants", "", "   ", "a\x00b", 7, None,
])
def test_anything_else_is_not_found_in_the_same_words(asked):
    with pytest.raises(ValidationError) as err:
        tenant_images.resolve_tenant_image(POOL, asked, "acme", PUBLIC)
    assert str(err.value) == NOT_FOUND % (asked,)
    assert "initech" not in str(err.value).replace(str(asked), "")


def test_a_published_name_must_be_a_file_of_the_pool_itself():
    for bad in (["tenants/initech/x.qcow2"], [".."], ["tenants"], "debian.qcow2", [3]):
        with pytest.raises(ValidationError, match="kvmfleet_public_images"):
            tenant_images.resolve_tenant_image(POOL, "x.image.qcow2", "acme", bad)


def test_the_tenant_must_be_a_label():
    with pytest.raises(ValidationError, match="tenant"):
        tenant_images.resolve_tenant_image(POOL, "x.image.qcow2", "../initech", PUBLIC)


def test_on_the_host_the_real_path_decides(tmp_path):
    pool = tmp_path / "pool"
    (pool / "tenants" / "acme").mkdir(parents=True)
    (pool / "tenants" / "initech").mkdir(parents=True)
    (pool / "tenants" / "initech" / "secret.image.qcow2").write_bytes(b"")
    (pool / "base.qcow2").write_bytes(b"")
    # a link in acme's directory to initech's image: its real path is initech's
    os.symlink(str(pool / "tenants" / "initech" / "secret.image.qcow2"), str(pool / "tenants" / "acme" / "link.image.qcow2"))
    real = os.path.realpath
    with pytest.raises(ValidationError, match=NOT_FOUND % "link.image.qcow2"):
        tenant_images.check_tenant_image_path(real(str(pool)), real(str(pool / "tenants" / "acme" / "link.image.qcow2")),
                                              "acme", shown="link.image.qcow2")
    with pytest.raises(ValidationError, match="not found"):
        tenant_images.check_tenant_image_path(str(pool), str(pool / "tenants" / "initech" / "secret.image.qcow2"), "acme")
    with pytest.raises(ValidationError, match="not found"):
        tenant_images.check_tenant_image_path(str(pool), str(pool / "tenants"), "acme")
    assert tenant_images.check_tenant_image_path(str(pool), str(pool / "base.qcow2"), "acme") == str(pool / "base.qcow2")
    own = str(pool / "tenants" / "acme" / "x.image.qcow2")
    assert tenant_images.check_tenant_image_path(str(pool), own, "acme") == own


def test_the_listing_holds_each_tenants_images_once_without_records_or_paths():
    files = [dict(path=POOL + "/tenants/acme/shop.image.qcow2", size=(1 << 30) + 1),
             dict(path=POOL + "/tenants/acme/shop.image.qcow2", size=(1 << 30) + 1),    # from a second host
             dict(path=POOL + "/tenants/acme/shop.image.qcow2.kvmfleet.json", size=300),
             dict(path=POOL + "/tenants/initech/secret.image.qcow2", size=1),
             dict(path=POOL + "/base.qcow2", size=1 << 30)]
    assert tenant_images.image_listing(POOL, files) == [dict(tenant="acme", name="shop.image.qcow2", size_gb=2),
                                                        dict(tenant="initech", name="secret.image.qcow2", size_gb=1)]
    assert tenant_images.image_listing(POOL, files, "acme") == [dict(tenant="acme", name="shop.image.qcow2", size_gb=2)]
    assert tenant_images.owner_of_image(POOL, POOL + "/base.qcow2") is None
    assert tenant_images.owner_of_image(POOL, POOL + "/tenants") is None


LISTING = [dict(tenant="acme", name="a.image.qcow2", size_gb=3), dict(tenant="initech", name="b.image.qcow2", size_gb=50)]


def test_the_image_quota_counts_the_tenants_own_images_only():
    checked = check_image_quota("acme", dict(images=2, image_gb=5), LISTING, "c.image.qcow2", 2 << 30)
    assert checked == dict(used=dict(images=1, image_gb=3), asked=dict(images=1, image_gb=2),
                           after=dict(images=2, image_gb=5))


@pytest.mark.parametrize("quota, size, words", [
    (dict(images=1), 1, "images: 1 used + 1 asked > 1 allowed"),
    (dict(image_gb=4), (1 << 30) + 1, "GiB of images: 3 used + 2 asked > 4 allowed"),
])
def test_an_image_over_the_quota_is_refused_with_the_numbers(quota, size, words):
    with pytest.raises(QuotaExceeded) as err:
        check_image_quota("acme", quota, LISTING, "c.image.qcow2", size)
    assert words in str(err.value) and "initech" not in str(err.value)


def test_an_image_the_tenant_has_already_counts_nothing_new():
    checked = check_image_quota("acme", dict(images=1, image_gb=3), LISTING, "a.image.qcow2", 3 << 30)
    assert checked["asked"] == dict(images=0, image_gb=0)


# ---------------------------------------------------------------- prepare_vm with a tenant

def host(reachable=True):
    return dict(reachable=reachable, error=None if reachable else "ssh: connect to host 10.0.0.12 port 22: refused",
                domains=[], cpus=8, memory_mb=16384)


REQUEST = dict(name="web1", vcpus=1, memory_mb=512, disk_gb=2, image=POOL + "/base.qcow2")


def test_prepare_resolves_the_tenants_image_and_keeps_the_operators_default():
    facts = {"node1": host()}
    own = prepare_vm(facts, REQUEST, image_dir=POOL, tenant="acme", tenant_image="shop.image.qcow2", public_images=PUBLIC)
    assert own["request"]["image"] == POOL + "/tenants/acme/shop.image.qcow2"
    default = prepare_vm(facts, REQUEST, image_dir=POOL, tenant="acme", public_images=PUBLIC)
    assert default["request"]["image"] == POOL + "/base.qcow2"
    with pytest.raises(ValidationError, match="not found among tenant acme's"):
        prepare_vm(facts, REQUEST, image_dir=POOL, tenant="acme", tenant_image=POOL + "/tenants/initech/s.image.qcow2")


def test_prepare_tells_a_tenant_of_unreadable_hosts_without_naming_them():
    facts = {"node1": host(), "node2": host(reachable=False)}
    with pytest.raises(ValidationError) as err:
        prepare_vm(facts, REQUEST, image_dir=POOL, tenant="acme")
    assert "1 hypervisor(s) cannot be read" in str(err.value)
    assert "node2" not in str(err.value) and "10.0.0.12" not in str(err.value)
    with pytest.raises(ValidationError, match="node2: ssh"):
        prepare_vm(facts, REQUEST, image_dir=POOL)       # the operator is told which and why
