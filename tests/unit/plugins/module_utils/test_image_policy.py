"""image_policy against real images made with qemu-img in tmp_path."""
import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import image_policy as policy
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

QEMU_IMG = shutil.which("qemu-img") or "/usr/bin/qemu-img"
pytestmark = pytest.mark.skipif(not os.path.exists(QEMU_IMG), reason="qemu-img is not installed")
MIB = 1024 * 1024


def qemu_img(*args):
    return subprocess.run([QEMU_IMG] + list(args), check=True, capture_output=True, text=True).stdout


def info(path, fmt=None, backing_chain=True):
    """What the module runs, through the policy's own argument list."""
    args = policy.info_args(QEMU_IMG, str(path), fmt=fmt, backing_chain=backing_chain)
    return policy.parse_info(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


@pytest.fixture
def images(tmp_path):
    """name -> path of every kind of image the tests need, made lazily."""
    def make(kind):
        path = tmp_path / kind
        if kind == "qcow2":
            qemu_img("create", "-q", "-f", "qcow2", str(path), "64M")
        elif kind == "raw":
            qemu_img("create", "-q", "-f", "raw", str(path), "64M")
        elif kind == "overlay":
            base = make("qcow2")
            qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path))
        elif kind == "datafile":
            qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=%s" % (tmp_path / "data.raw"), str(path), "64M")
        elif kind == "luks-qcow2":
            # qemu-img benchmarks the key derivation first; on a loaded machine that benchmark can
            # fail ("Unable to get accurate CPU usage"), so the image is made with a few tries.
            for attempt in range(5):
                try:
                    qemu_img("create", "-q", "--object", "secret,id=sec0,data=abc", "-f", "qcow2",
                             "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50",
                             str(path), "4M")
                    break
                except subprocess.CalledProcessError:
                    if attempt == 4:
                        raise
                    path.unlink(missing_ok=True)
        elif kind == "huge":
            qemu_img("create", "-q", "-f", "qcow2", str(path), "3T")
        elif kind == "vmdk":
            qemu_img("create", "-q", "-f", "vmdk", str(path), "64M")
        elif kind == "raw-with-qcow2-header":
            # A raw disk whose first bytes are a qcow2 header naming a host file as backing file:
            # a format probe would read it as qcow2 and follow the backing file.
            qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", "-u", str(path), "64M")
        return path
    return make


# ---- accepted

@pytest.mark.parametrize("kind, declared, fmt", [
    ("qcow2", "auto", "qcow2"), ("qcow2", "qcow2", "qcow2"), ("raw", "auto", "raw"), ("raw", "raw", "raw"),
])
def test_self_contained_qcow2_and_raw_are_accepted(images, kind, declared, fmt):
    facts = policy.check_image(info(images(kind)), declared, max_virtual_gb=1)
    assert facts.format == fmt
    assert facts.virtual_size == 64 * MIB
    assert facts.virtual_size_gb == 1   # rounded up
    assert isinstance(facts.actual_size, int)
    assert set(facts.checked) == set(policy.CHECKS)


def test_probe_without_backing_chain_gives_the_same_answer(images):
    path = images("qcow2")
    assert policy.check_image(info(path, backing_chain=False)) == policy.check_image(info(path, fmt="qcow2"))


def test_virtual_size_at_the_limit_is_accepted(images):
    assert policy.check_image(info(images("raw")), max_virtual_gb=1).virtual_size_gb == 1


# ---- refused, each with a real image

@pytest.mark.parametrize("kind, declared, backing_chain, refused, words", [
    ("overlay", "auto", False, "backing-file", "backing file"),
    ("overlay", "auto", True, "backing-chain", "backing chain of 2 layers"),
    ("datafile", "auto", False, "data-file", "external data file"),
    ("luks-qcow2", "auto", False, "encrypted", "encrypted"),
    ("vmdk", "auto", False, "format", "'vmdk' is not allowed"),
    ("huge", "auto", False, "virtual-size", "3072.0 GiB, more than the 2048 GiB"),
    ("qcow2", "raw", False, "format-mismatch", "declared raw but qemu-img detects qcow2"),
    ("raw", "qcow2", False, "format-mismatch", "declared qcow2 but qemu-img detects raw"),
])
def test_refusals_name_the_problem(images, kind, declared, backing_chain, refused, words):
    with pytest.raises(ValidationError) as caught:
        policy.check_image(info(images(kind), backing_chain=backing_chain), declared)
    assert caught.value.details["refused"] == refused
    assert words in str(caught.value)


def test_a_raw_disk_with_a_qcow2_header_is_refused_whatever_is_declared(images):
    path = images("raw-with-qcow2-header")
    probe = info(path, backing_chain=False)   # never follows the header's backing file
    assert probe[0]["format"] == "qcow2"
    for declared in ("raw", "auto", "qcow2"):
        with pytest.raises(ValidationError) as caught:
            policy.check_image(probe, declared)
        assert caught.value.details["refused"] == ("format-mismatch" if declared == "raw" else "backing-file")
    assert "/etc/hostname" in str(caught.value)


def test_data_file_path_is_reported(images, tmp_path):
    with pytest.raises(ValidationError) as caught:
        policy.check_image(info(images("datafile"), backing_chain=False))
    assert caught.value.details["data_file"] == str(tmp_path / "data.raw")


# ---- refused, on synthetic JSON (qemu-img's output fields)

def layer(**extra):
    base = {"format": "qcow2", "virtual-size": MIB, "actual-size": 4096, "filename": "x"}
    base.update(extra)
    return base


@pytest.mark.parametrize("info_json, words", [
    ([], "no image description"),
    ("text", "no image description"),
    ([layer(), "x"], "no image description"),
    ([layer(**{"full-backing-filename": "/etc/shadow"})], "backing file"),
    ([layer(**{"virtual-size": None})], "no valid virtual size"),
    ([layer(**{"virtual-size": True})], "no valid virtual size"),
    ([layer(**{"virtual-size": 0})], "no valid virtual size"),
    ([layer(encrypted=True)], "encrypted"),
    ([layer(format=None)], "format None is not allowed"),
    ([layer(format="luks")], "format 'luks' is not allowed"),
])
def test_malformed_or_hostile_descriptions_are_refused(info_json, words):
    with pytest.raises(ValidationError, match=words):
        policy.check_image(info_json)


def test_a_single_dict_is_one_layer():
    assert policy.check_image(layer()).format == "qcow2"


def test_unknown_declared_format_is_refused():
    with pytest.raises(ValidationError, match="format 'vmdk' is not one of auto, qcow2, raw"):
        policy.check_image([layer()], "vmdk")


def test_parse_info_refuses_non_json():
    with pytest.raises(ValidationError, match="did not return JSON"):
        policy.parse_info("qemu-img: Could not open")


# ---- qemu-img check

def test_check_of_a_good_qcow2_passes(images):
    done = subprocess.run(policy.check_args(QEMU_IMG, str(images("qcow2"))), capture_output=True, text=True, check=False)
    assert done.returncode == 0
    policy.check_consistency(done.returncode, done.stdout, done.stderr)


def test_check_of_a_damaged_qcow2_refuses(images):
    path = images("qcow2")
    with open(str(path), "r+b") as handle:   # point the refcount table far outside the file
        handle.seek(48)
        handle.write((1 << 40).to_bytes(8, "big"))
    done = subprocess.run(policy.check_args(QEMU_IMG, str(path)), capture_output=True, text=True, check=False)
    assert done.returncode not in (0, 3)
    with pytest.raises(ValidationError, match="qemu-img check refuses the image"):
        policy.check_consistency(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("rc, stdout, ok", [
    (0, "{}", True), (3, json.dumps({"leaks": 2}), True),
    (2, json.dumps({"corruptions": 5, "check-errors": 0}), False), (1, "", False), (63, "not json", False),
])
def test_check_exit_codes(rc, stdout, ok):
    if ok:
        policy.check_consistency(rc, stdout)
    else:
        with pytest.raises(ValidationError) as caught:
            policy.check_consistency(rc, stdout, "boom")
        assert caught.value.details["refused"] == "consistency"


def test_corruption_count_is_in_the_message():
    with pytest.raises(ValidationError, match="5 corruptions"):
        policy.check_consistency(2, json.dumps({"corruptions": 5, "check-errors": 0}))


# ---- argument lists

def test_info_args_probe_and_fixed_format():
    assert policy.info_args("qemu-img", "/x y", backing_chain=False) == [
        "qemu-img", "info", "--output=json", "-U", "/x y"]
    assert policy.info_args("qemu-img", "/x y", fmt="raw") == [
        "qemu-img", "info", "--output=json", "--backing-chain", "-U", "-f", "raw", "/x y"]


def test_check_and_convert_args():
    assert policy.check_args("q", "/a") == ["q", "check", "--output=json", "-U", "-f", "qcow2", "/a"]
    assert policy.convert_args("q", "/a; rm -rf /", "raw", "/pool/.t") == [
        "q", "convert", "-q", "-f", "raw", "-O", "qcow2", "/a; rm -rf /", "/pool/.t"]


@pytest.mark.parametrize("builder", [
    lambda: policy.info_args("q", "/a", fmt="vmdk"),
    lambda: policy.convert_args("q", "/a", "auto", "/b"),
    lambda: policy.convert_args("q", "/a", "luks", "/b"),
])
def test_only_qcow2_or_raw_are_ever_passed_as_format(builder):
    with pytest.raises(ValidationError):
        builder()


def test_convert_writes_a_self_contained_image(images, tmp_path):
    out = tmp_path / "flat.qcow2"
    subprocess.run(policy.convert_args(QEMU_IMG, str(images("overlay")), "qcow2", str(out)), check=True)
    chain = info(out, fmt="qcow2")
    assert len(chain) == 1 and "backing-filename" not in chain[0]
    assert policy.check_image(chain, "qcow2").format == "qcow2"


def test_convert_of_raw_gives_qcow2(images, tmp_path):
    out = tmp_path / "from-raw.qcow2"
    subprocess.run(policy.convert_args(QEMU_IMG, str(images("raw")), "raw", str(out)), check=True)
    assert policy.check_image(info(out, fmt="qcow2"), "qcow2").virtual_size == 64 * MIB


# ---- qcow2 header

def test_backing_file_read_from_the_header(images, tmp_path):
    overlay = images("overlay")
    data = overlay.read_bytes()[:65536]
    assert policy.qcow2_backing_file(data) == str(tmp_path / "qcow2")
    assert policy.qcow2_backing_file(images("qcow2").read_bytes()[:65536]) is None
    assert policy.qcow2_backing_file(images("raw").read_bytes()[:65536]) is None
    assert policy.qcow2_backing_file(data[:30]) is None   # name beyond the bytes given


# ---- names and checksums

@pytest.mark.parametrize("name", ["web1.image.qcow2", "a.qcow2.qcow2", "0.1_x-y.qcow2", "base.v2.qcow2"])
def test_good_image_names(name):
    assert policy.check_image_name(name) == name


@pytest.mark.parametrize("name, words", [
    ("web1.qcow2", "VM's own disk"), ("base.qcow2", "VM's own disk"),
    ("../etc.qcow2", "no slashes"), ("a/b.qcow2", "no slashes"), ("/abs.x.qcow2", "no slashes"),
    (".hidden.qcow2", "no slashes"), ("Web1.image.qcow2", "must match"), ("web1.img", "must match"),
    ("a..b.qcow2", "no '..'"), ("", "must match"), (None, "must match"), ("web1.qcow2\n", "must match"),
])
def test_bad_image_names(name, words):
    with pytest.raises(ValidationError, match=words):
        policy.check_image_name(name)


def test_checksum_parsing():
    digest = "ab" * 32
    assert policy.parse_checksum("sha256:" + digest.upper()) == digest
    assert policy.parse_checksum(None) is None
    for bad in ("md5:" + digest, digest, "sha256:" + digest[:-1], "sha256:" + "g" * 64):
        with pytest.raises(ValidationError, match="sha256: followed by 64 hex digits"):
            policy.parse_checksum(bad)


def test_sidecar_round_trip(images):
    facts = policy.check_image(info(images("qcow2")))
    record = policy.sidecar_record("x.image.qcow2", "ab" * 32, facts, "auto")
    assert record["checked"][-1] == "qemu-img-check"
    assert policy.parse_sidecar(json.dumps(record), "/p") == record
    with pytest.raises(ValidationError, match="/p is not a kvmfleet image record"):
        policy.parse_sidecar('{"name": "x"}', "/p")
    with pytest.raises(ValidationError, match="not a kvmfleet image record"):
        policy.parse_sidecar("garbage", "/p")
