import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import scaling
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.scaling import Sizes

CUR = Sizes(vcpus=2, vcpus_max=4, memory_mb=1024, memory_max_mb=4096, vcpus_live=2, balloon_kib=1024 * 1024)
OFF = Sizes(vcpus=2, vcpus_max=4, memory_mb=1024, memory_max_mb=4096)


def refused(field, **kwargs):
    with pytest.raises(ValidationError) as err:
        scaling.target_sizes(CUR, **kwargs)
    assert err.value.details["field"] == field, err.value
    return str(err.value)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(vcpus=4, memory_mb=2048), (4, 2048)),
    (dict(vcpus="3"), (3, 1024)),
    (dict(memory_mb=" 512 "), (2, 512)),
    (dict(memory_mb=2048.0), (2, 2048)),
    (dict(resource="cpu", direction="up"), (3, 1024)),
    (dict(resource="cpu", direction="down"), (1, 1024)),
    (dict(resource="cpu", direction="up", step=2), (4, 1024)),
    (dict(resource="cpu", direction="UP", step="50%"), (3, 1024)),
    (dict(resource="memory", direction="up"), (2, 1280)),
    (dict(resource="memory", direction="down"), (2, 768)),
    (dict(resource="memory", direction="up", step="25%"), (2, 1280)),
    (dict(resource="memory", direction="up", step="1G"), (2, 2048)),
    (dict(resource="memory", direction="down", step="512M"), (2, 512)),
    (dict(resource="memory", direction="down", step="1%"), (2, 1013)),
])
def test_target_sizes(kwargs, expected):
    assert scaling.target_sizes(CUR, **kwargs) == expected


@pytest.mark.parametrize("kwargs, field, words", [
    (dict(vcpus=0), "vcpus", "must be >= 1"),
    (dict(vcpus=-2), "vcpus", "must be >= 1"),
    (dict(vcpus="2.5"), "vcpus", "decimal integer"),
    (dict(vcpus=2.5), "vcpus", "whole number"),
    (dict(vcpus=True), "vcpus", "not a boolean"),
    (dict(vcpus="two"), "vcpus", "decimal integer"),
    (dict(memory_mb=0), "memory_mb", "site minimum"),
    (dict(memory_mb=-512), "memory_mb", "site minimum"),
    (dict(memory_mb="1.5G"), "memory_mb", "decimal integer"),
    (dict(resource="cpu", direction="up,down"), "direction", "up and down together"),
    (dict(resource="cpu", direction="up down"), "direction", "up and down together"),
    (dict(resource="cpu", direction=["up", "down"]), "direction", "up and down together"),
    (dict(resource="cpu", direction="both"), "direction", "up and down together"),
    (dict(resource="cpu", direction="sideways"), "direction", "must be up or down"),
    (dict(resource="cpu"), "direction", "is required"),
    (dict(direction="up"), "resource", "is required"),
    (dict(resource="disk", direction="up"), "resource", "cpu or memory"),
    (dict(resource="cpu", direction="up", step=0), "step", "at least 1"),
    (dict(resource="cpu", direction="up", step="-1"), "step", "positive integer"),
    (dict(resource="cpu", direction="up", step="1.5"), "step", "positive integer"),
    (dict(resource="cpu", direction="up", step=1.5), "step", "whole number"),
    (dict(resource="cpu", direction="up", step="1G"), "step", "without a unit"),
    (dict(resource="cpu", direction="down", step=2), "step", "at least one"),
    (dict(resource="memory", direction="down", step=1000), "step", "below the site minimum"),
    (dict(vcpus=4, direction="up"), "direction", "not both"),
    (dict(), "vcpus", "say what to scale"),
])
def test_bad_requests_name_the_field(kwargs, field, words):
    assert words in refused(field, **kwargs)


def test_maxima_are_kept_within_and_refused_above_naming_the_maximum():
    assert scaling.check_maxima(CUR, 4, 4096) == (4, 4096)
    with pytest.raises(ValidationError) as err:
        scaling.check_maxima(CUR, 5, 1024)
    assert "maximum of 4 vCPUs" in str(err.value) and "allow_restart" in str(err.value)
    assert err.value.details["vcpus_max"] == 4
    with pytest.raises(ValidationError) as err:
        scaling.check_maxima(CUR, 2, 8192)
    assert "maximum of 4096 MiB" in str(err.value)


def test_allow_restart_raises_the_maxima_within_the_host():
    assert scaling.check_maxima(CUR, 6, 8192, allow_restart=True, host_cpus=8, host_memory_mb=16384) == (6, 8192)
    with pytest.raises(ValidationError, match="host maximum"):
        scaling.check_maxima(CUR, 9, 1024, allow_restart=True, host_cpus=8)
    with pytest.raises(ValidationError, match="host memory"):
        scaling.check_maxima(CUR, 2, 20000, allow_restart=True, host_memory_mb=16384)


def test_plan_running_changes_live_and_definition_with_shrinks_first():
    steps = scaling.plan_scale(CUR, True, 3, 512)
    assert steps == [scaling.MEMORY_LIVE, scaling.VCPUS_LIVE, scaling.VCPUS_CONFIG, scaling.MEMORY_CONFIG]
    steps = scaling.plan_scale(CUR, True, 1, 2048)
    assert steps[:2] == [scaling.VCPUS_LIVE, scaling.MEMORY_LIVE]


def test_plan_same_size_is_empty_and_balloon_within_tolerance_counts_as_there():
    assert scaling.plan_scale(CUR, True, 2, 1024) == []
    near = Sizes(2, 4, 1024, 4096, vcpus_live=2, balloon_kib=1024 * 1024 - 512)
    assert scaling.plan_scale(near, True, 2, 1024) == []
    short = Sizes(2, 4, 1024, 4096, vcpus_live=2, balloon_kib=900 * 1024)
    assert scaling.plan_scale(short, True, 2, 1024) == [scaling.MEMORY_LIVE]


def test_plan_live_and_definition_out_of_step_are_both_brought_to_the_size():
    skew = Sizes(3, 4, 1024, 4096, vcpus_live=2, balloon_kib=1024 * 1024)
    assert scaling.plan_scale(skew, True, 2, 1024) == [scaling.VCPUS_CONFIG]
    assert scaling.plan_scale(skew, True, 3, 1024) == [scaling.VCPUS_LIVE]


def test_plan_shut_off_changes_the_definition_only():
    assert scaling.plan_scale(OFF, False, 4, 2048) == [scaling.VCPUS_CONFIG, scaling.MEMORY_CONFIG]


def test_plan_above_maximum_redefines_and_restarts_without_live_steps():
    steps = scaling.plan_scale(CUR, True, 6, 1024, vcpus_max=6)
    assert steps == [scaling.VCPUS_MAX, scaling.VCPUS_CONFIG, scaling.RESTART]
    steps = scaling.plan_scale(OFF, False, 2, 8192, memory_max_mb=8192)
    assert steps == [scaling.MEMORY_MAX, scaling.MEMORY_CONFIG]


def test_predicted_and_diff_text():
    after = scaling.predicted(CUR, True, 3, 2048, 4, 4096)
    assert after.to_dict() == dict(vcpus=3, vcpus_max=4, memory_mb=2048, memory_max_mb=4096, vcpus_live=3,
                                   balloon_mb=2048)
    text = scaling.sizes_text(after, True)
    assert "vcpus: 3\n" in text and "balloon_mb: 2048\n" in text
    assert "balloon_mb" not in scaling.sizes_text(OFF, False)
