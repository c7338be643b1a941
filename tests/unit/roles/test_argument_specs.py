# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's meta/argument_specs.yml documents what the role really does by default.

Ansible takes a role variable's default from defaults/main.yml, never from argument_specs; the
``default:`` there is documentation (ansible-doc, antsibull-docs) and drifts unless a test holds
it to defaults/main.yml. A default computed by a template for an option that is not text (a list
of the hypervisors, a bool that depends on the group) is no valid value of its type, which the
docs schema refuses: such an option lists no ``default:`` and says it in words instead.
"""

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
TEXT_TYPES = ("str", "path", "raw")
ROLE_NAMES = sorted(path.name for path in ROLES.iterdir() if (path / "meta" / "argument_specs.yml").is_file())


def load(path):
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def entry_points(role):
    return load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]


def test_every_role_has_argument_specs():
    assert ROLE_NAMES == sorted(path.name for path in ROLES.iterdir() if path.is_dir())


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_each_entry_point_has_a_short_description_and_a_description(role):
    for name, entry in entry_points(role).items():
        assert entry.get("short_description"), (role, name)
        assert entry.get("description"), (role, name)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_each_option_lists_the_default_of_defaults_main_yml(role):
    defaults = load(ROLES / role / "defaults" / "main.yml") or {}
    for entry_name, entry in entry_points(role).items():
        for option, spec in (entry.get("options") or {}).items():
            where = "%s: entry point %s, option %s" % (role, entry_name, option)
            assert spec.get("description"), where + " has no description"
            computed = isinstance(defaults.get(option), str) and "{{" in defaults[option]
            if computed and spec.get("type", "str") not in TEXT_TYPES:
                assert "default" not in spec, where + ": a template is no valid %s" % spec["type"]
                assert "default" in " ".join(_as_list(spec["description"])).lower(), where + " does not say its default"
            elif option in defaults:
                assert "default" in spec, where + " does not list its default %r" % (defaults[option],)
                assert spec["default"] == defaults[option], where
            else:
                assert "default" not in spec, where + " lists a default that defaults/main.yml does not set"


def _as_list(description):
    return description if isinstance(description, list) else [description]
