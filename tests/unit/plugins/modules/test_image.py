"""The image module in-process, on real images made with qemu-img in tmp_path."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest
from ansible.module_utils import basic

from ansible_collections.kvmfleet.iaas.plugins.modules import image

QEMU_IMG = shutil.which("qemu-img") or "/usr/bin/qemu-img"
pytestmark = pytest.mark.skipif(not os.path.exists(QEMU_IMG), reason="qemu-img is not installed")
NAME = "web1.image.qcow2"


def make(path, fmt="qcow2", size="64M", *extra):
    subprocess.run([QEMU_IMG, "create", "-q", "-f", fmt] + list(extra) + [str(path), size], check=True)
    return path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def qemu_info(path):
    return json.loads(subprocess.run([QEMU_IMG, "info", "--output=json", "-U", str(path)], check=True,
                                     capture_output=True, text=True).stdout)


@pytest.fixture
def pool(tmp_path):
    path = tmp_path / "pool"
    path.mkdir()
    return path


@pytest.fixture
def src(tmp_path):
    return make(tmp_path / "upload.qcow2")


def args(pool, src=None, **kw):
    base = dict(name=NAME, pool_dir=str(pool))
    if src is not None:
        base["src"] = str(src)
    base.update(kw)
    return base


def listing(pool):
    return sorted(os.listdir(str(pool)))


def test_import_converts_into_the_pool_and_records_the_source(pool, src, run_module):
    result = run_module(image, args(pool, src))
    assert result["changed"] is True and result["steps"] == ["import"], result
    assert listing(pool) == [NAME, NAME + ".kvmfleet.json"]   # no temporary file left
    made = pool / NAME
    info = qemu_info(made)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert result["image"] == dict(path=str(made), sidecar=str(pool / (NAME + ".kvmfleet.json")), state="present",
                                   format_detected="qcow2", virtual_size=64 * 1024 ** 2, virtual_size_gb=1,
                                   actual_size=os.stat(str(made)).st_blocks * 512, sha256=sha(src))
    record = json.loads((pool / (NAME + ".kvmfleet.json")).read_text())
    assert record["source_sha256"] == sha(src) and record["source_format"] == "qcow2"
    assert "no-backing-file" in record["checked"] and "qemu-img-check" in record["checked"]
    assert oct(os.stat(str(made)).st_mode & 0o777) == "0o644"


def test_a_raw_source_becomes_qcow2(pool, tmp_path, run_module):
    raw = make(tmp_path / "disk.raw", "raw")
    result = run_module(image, args(pool, raw, format="raw"))
    assert result["changed"] is True and result["image"]["format_detected"] == "raw"
    assert qemu_info(pool / NAME)["format"] == "qcow2"


def test_same_source_again_changes_nothing(pool, src, run_module):
    run_module(image, args(pool, src))
    before = os.stat(str(pool / NAME))
    again = run_module(image, args(pool, src))
    assert again["changed"] is False and again["steps"] == [] and again["image"]["sha256"] == sha(src)
    by_checksum = run_module(image, args(pool, checksum="sha256:" + sha(src)))
    assert by_checksum["changed"] is False and "failed" not in by_checksum
    assert os.stat(str(pool / NAME)).st_mtime_ns == before.st_mtime_ns


def test_another_source_under_the_same_name_is_a_conflict(pool, src, tmp_path, run_module):
    run_module(image, args(pool, src))
    kept = (pool / NAME).read_bytes(), (pool / (NAME + ".kvmfleet.json")).read_bytes()
    other = make(tmp_path / "other.qcow2", "qcow2", "128M")
    result = run_module(image, args(pool, other))
    assert result["failed"] is True
    assert "imported from a source with sha256 %s; this source has sha256 %s" % (sha(src), sha(other)) in result["msg"]
    assert "Nothing was changed" in result["msg"]
    by_checksum = run_module(image, args(pool, checksum="sha256:" + "0" * 64))
    assert by_checksum["failed"] is True and by_checksum["recorded_sha256"] == sha(src)
    assert ((pool / NAME).read_bytes(), (pool / (NAME + ".kvmfleet.json")).read_bytes()) == kept
    assert listing(pool) == [NAME, NAME + ".kvmfleet.json"]


def test_check_mode_validates_and_writes_nothing(pool, src, run_module):
    result = run_module(image, dict(args(pool, src), _ansible_check_mode=True, _ansible_diff=True))
    assert result["changed"] is True and result["steps"] == ["import"]
    assert result["image"]["sha256"] == sha(src) and result["image"]["actual_size"] is None
    assert result["diff"]["before"] == dict(image=str(pool / NAME), state="absent")
    assert result["diff"]["after"]["state"] == "present" and result["diff"]["after"]["source_sha256"] == sha(src)
    assert listing(pool) == []


def test_check_mode_still_refuses_a_bad_image(pool, tmp_path, run_module):
    base = make(tmp_path / "base.qcow2")
    overlay = make(tmp_path / "overlay.qcow2", "qcow2", "64M", "-b", str(base), "-F", "qcow2")
    result = run_module(image, dict(args(pool, overlay), _ansible_check_mode=True))
    assert result["failed"] is True and "backing file" in result["msg"] and result["refused"] == "backing-file"
    assert listing(pool) == []


@pytest.mark.parametrize("extra, words", [
    (["-o", "data_file=DATA"], "external data file"),
    (["-b", "/etc/hostname", "-F", "raw", "-u"], "backing file '/etc/hostname'"),
])
def test_refused_images_leave_nothing(pool, tmp_path, run_module, extra, words):
    extra = [e.replace("DATA", str(tmp_path / "data.raw")) for e in extra]
    bad = make(tmp_path / "bad.qcow2", "qcow2", "64M", *extra)
    result = run_module(image, args(pool, bad))
    assert result["failed"] is True and words in result["msg"], result
    assert listing(pool) == []


def test_declared_format_must_match(pool, src, run_module):
    result = run_module(image, args(pool, src, format="raw"))
    assert result["failed"] is True and "declared raw but qemu-img detects qcow2" in result["msg"]
    assert listing(pool) == []


def test_oversized_image_is_refused(pool, tmp_path, run_module):
    big = make(tmp_path / "big.qcow2", "qcow2", "5G")
    result = run_module(image, args(pool, big, max_virtual_gb=4))
    assert result["failed"] is True and "more than the 4 GiB allowed" in result["msg"]
    assert listing(pool) == []


def test_wrong_checksum_is_refused_before_anything(pool, src, run_module):
    result = run_module(image, args(pool, src, checksum="sha256:" + "1" * 64))
    assert result["failed"] is True and "not the expected" in result["msg"] and result["sha256"] == sha(src)
    assert listing(pool) == []


@pytest.mark.parametrize("kw, words", [
    (dict(name="web1.qcow2"), "VM's own disk"),
    (dict(name="../x.image.qcow2"), "no slashes"),
    (dict(src=None), "src is required"),
    (dict(src="/nonexistent/disk.qcow2"), "cannot be read"),
    (dict(src="/dev/null"), "not a regular file"),
    (dict(checksum="md5:abc"), "sha256: followed by 64 hex digits"),
])
def test_bad_arguments(pool, src, run_module, kw, words):
    given = args(pool, src)
    given.update(kw)
    if given.get("src") is None:
        given.pop("src")
    result = run_module(image, given)
    assert result["failed"] is True and words in result["msg"], result
    assert listing(pool) == []


def test_missing_pool_dir(tmp_path, src, run_module):
    result = run_module(image, args(tmp_path / "nope", src))
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_a_foreign_image_of_that_name_is_never_touched(pool, src, run_module):
    foreign = make(pool / NAME)
    content = foreign.read_bytes()
    present = run_module(image, args(pool, src))
    assert present["failed"] is True and "kvmfleet did not import it" in present["msg"]
    absent = run_module(image, args(pool, state="absent"))
    assert absent["failed"] is True and "does not delete it" in absent["msg"]
    assert foreign.read_bytes() == content and listing(pool) == [NAME]


def test_absent_removes_image_and_record(pool, src, run_module):
    run_module(image, args(pool, src))
    checked = run_module(image, dict(args(pool, state="absent"), _ansible_check_mode=True, _ansible_diff=True))
    assert checked["changed"] is True and checked["diff"]["after"]["state"] == "absent"
    assert checked["diff"]["before"]["source_sha256"] == sha(src)
    assert listing(pool) == [NAME, NAME + ".kvmfleet.json"]
    gone = run_module(image, args(pool, state="absent"))
    assert gone["changed"] is True and gone["steps"] == ["remove"] and gone["image"]["state"] == "absent"
    assert gone["image"]["sha256"] == sha(src)
    assert listing(pool) == []
    again = run_module(image, args(pool, state="absent"))
    assert again["changed"] is False and "failed" not in again


def test_absent_refuses_an_image_other_pool_files_build_on(pool, src, run_module):
    run_module(image, args(pool, src))
    make(pool / "vm1.qcow2", "qcow2", "64M", "-b", NAME, "-F", "qcow2")   # relative, as in a pool
    result = run_module(image, args(pool, state="absent"))
    assert result["failed"] is True and "backing file of %s" % (pool / "vm1.qcow2") in result["msg"]
    assert (pool / NAME).exists() and (pool / (NAME + ".kvmfleet.json")).exists()


def test_a_record_without_its_image_is_reported(pool, src, run_module):
    run_module(image, args(pool, src))
    (pool / NAME).unlink()
    result = run_module(image, args(pool, src))
    assert result["failed"] is True and "exists but its image" in result["msg"]


def test_a_failed_conversion_leaves_no_temporary_file(pool, src, run_module, monkeypatch):
    real = basic.AnsibleModule.run_command

    def failing_convert(self, cmd, *a, **kw):
        if cmd[1] == "convert":
            with open(cmd[-1], "wb") as half:   # qemu-img wrote part of the file, then died
                half.write(b"QFI\xfb" + b"\0" * 4096)
            return 1, "", "qemu-img: error while writing: No space left on device"
        return real(self, cmd, *a, **kw)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", failing_convert)
    result = run_module(image, args(pool, src))
    assert result["failed"] is True and "No space left on device" in result["msg"]
    assert listing(pool) == []


def test_a_failure_after_the_image_is_linked_removes_it(pool, src, run_module, monkeypatch):
    real = os.link

    def no_record(source, target):
        if target.endswith(".kvmfleet.json"):
            raise OSError(28, "No space left on device")
        return real(source, target)

    monkeypatch.setattr(image.os, "link", no_record)
    result = run_module(image, args(pool, src))
    assert result["failed"] is True and "No space left on device" in result["msg"]
    assert listing(pool) == []


def test_a_corrupt_qcow2_is_refused_by_qemu_img_check(pool, src, run_module, monkeypatch):
    real = basic.AnsibleModule.run_command

    def corrupt_check(self, cmd, *a, **kw):
        if cmd[1] == "check":
            return 2, '{"corruptions": 3, "check-errors": 0}', ""
        return real(self, cmd, *a, **kw)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", corrupt_check)
    result = run_module(image, args(pool, src))
    assert result["failed"] is True and "qemu-img check refuses the image" in result["msg"], result
    assert result["refused"] == "consistency" and listing(pool) == []


def test_the_converted_copy_is_checked_before_it_is_linked(pool, src, run_module, monkeypatch):
    real = basic.AnsibleModule.run_command

    def oversized_copy(self, cmd, *a, **kw):
        if cmd[1] == "convert":   # the copy comes out other than the source said
            make(cmd[-1], "qcow2", "5G")
            return 0, "", ""
        return real(self, cmd, *a, **kw)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", oversized_copy)
    result = run_module(image, args(pool, src, max_virtual_gb=4))
    assert result["failed"] is True and "more than the 4 GiB allowed" in result["msg"], result
    assert listing(pool) == []


def test_an_image_appearing_meanwhile_is_not_overwritten(pool, src, tmp_path, run_module, monkeypatch):
    real = os.link
    squatter = make(tmp_path / "squatter.qcow2")

    def racing(source, target):
        if target.endswith(NAME):
            shutil.copy(str(squatter), target)   # someone else made it between our check and our link
        return real(source, target)

    monkeypatch.setattr(image.os, "link", racing)
    result = run_module(image, args(pool, src))
    assert result["failed"] is True and "appeared while the image was imported" in result["msg"]
    assert (pool / NAME).read_bytes() == squatter.read_bytes()
    assert listing(pool) == [NAME]


def test_documentation_covers_every_option():
    import yaml
    doc = yaml.safe_load(image.DOCUMENTATION)
    assert set(doc["options"]) == set(image.ImageModule.argument_spec)
    for option, spec in image.ImageModule.argument_spec.items():
        assert doc["options"][option]["type"] == spec["type"]
        assert doc["options"][option].get("default") == spec.get("default")
        assert doc["options"][option].get("choices") == spec.get("choices")
    returned = yaml.safe_load(image.RETURN)
    for key, entry in list(returned.items()) + list(returned["image"]["contains"].items()):
        assert {"description", "returned", "type"} <= set(entry), key


# ---------------------------------------------------------------- a tenant's image (docs/tenancy.md)

def test_a_tenants_image_goes_into_its_own_directory_made_on_first_use(pool, src, run_module):
    checked = run_module(image, dict(args(pool, src, tenant="acme"), _ansible_check_mode=True))
    assert checked["changed"] is True and listing(pool) == []        # check mode makes not even the directory
    result = run_module(image, args(pool, src, tenant="acme"))
    own = pool / "tenants" / "acme"
    assert result["changed"] is True and result["image"]["path"] == str(own / NAME)
    assert listing(own) == [NAME, NAME + ".kvmfleet.json"] and listing(pool) == ["tenants"]
    again = run_module(image, args(pool, src, tenant="acme"))
    assert again["changed"] is False
    # the operator's image of the same name is another image
    assert run_module(image, args(pool, src))["changed"] is True and (pool / NAME).exists()


def test_a_tenants_image_that_a_vm_disk_in_the_pool_builds_on_is_not_removed(pool, src, run_module):
    run_module(image, args(pool, src, tenant="acme"))
    backing = str(pool / "tenants" / "acme" / NAME)
    make(pool / "vm1.qcow2", "qcow2", "64M", "-b", backing, "-F", "qcow2")   # the VM's disk, in the pool itself
    result = run_module(image, args(pool, state="absent", tenant="acme"))
    assert result["failed"] is True and "backing file of %s" % (pool / "vm1.qcow2") in result["msg"]
    assert os.path.exists(backing)


def test_a_tenant_name_that_is_not_a_label_is_refused(pool, src, run_module):
    result = run_module(image, args(pool, src, tenant="../initech"))
    assert result["failed"] is True and "tenant" in result["msg"] and listing(pool) == []
