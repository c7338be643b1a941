"""KvmfleetModule: the one typed-error mapping, options and libraries by need, libvirt only on request."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import base_module
from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule, error_result
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, KvmfleetError, MissingLibrary
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.deadline import DEFAULT_TIMEOUT
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import DEFAULT_URI
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml import parser


class Failed(Exception):
    pass


class FakeAnsibleModule:
    """Records what the base hands AnsibleModule and what it exits with."""

    def __init__(self, argument_spec, **kwargs):
        self.argument_spec, self.kwargs = argument_spec, kwargs
        self.params = dict((k, v.get("default")) for k, v in argument_spec.items())
        self.check_mode, self._diff = False, False
        self.exited = None

    def exit_json(self, **result):
        self.exited = dict(result)

    def fail_json(self, **result):
        self.exited = dict(result, failed=True)
        raise Failed()


@pytest.fixture
def fake(monkeypatch):
    made = []

    def factory(**kw):
        made.append(FakeAnsibleModule(**kw))
        return made[-1]
    monkeypatch.setattr(base_module, "AnsibleModule", factory)
    return made


def module_class(result=None, error=None, **attrs):
    def run(self):
        if error is not None:
            raise error
        return dict(result or {})
    return type("Probe", (KvmfleetModule,), dict(dict(argument_spec=dict(name=dict(type="str"))), run=run, **attrs))


def test_a_typed_error_fails_with_its_message_and_details(fake):
    with pytest.raises(Failed):
        module_class(error=Conflict("taken", path="/x", users=["a"]), uses_libvirt=False).execute()
    assert fake[0].exited == dict(msg="taken", path="/x", users=["a"], failed=True)


def test_a_library_found_missing_in_use_fails_with_ansibles_missing_library_message(fake):
    with pytest.raises(Failed):
        module_class(error=MissingLibrary("netaddr", "Traceback: no netaddr"), uses_libvirt=False).execute()
    assert fake[0].exited == dict(msg=base_module.missing_required_lib("netaddr"), exception="Traceback: no netaddr",
                                  failed=True)


def test_details_never_overwrite_the_keys_fail_json_owns():
    err = KvmfleetError("real reason", changed=True, failed=False, invocation={}, warnings=[],
                        exception="x", kept=1)
    assert error_result(err) == dict(msg="real reason", kept=1)


def test_run_result_is_exited_with_changed_defaulting_to_false(fake):
    module_class(result=dict(steps=[]), uses_libvirt=False).execute()
    assert fake[0].exited == dict(steps=[], changed=False)


def test_a_module_without_libvirt_has_no_connection_options_and_cannot_connect(fake):
    probe = module_class(uses_libvirt=False, module_kwargs=dict(supports_check_mode=True))()
    assert set(fake[0].argument_spec) == {"name"} and fake[0].kwargs == dict(supports_check_mode=True)
    assert probe.missing_libraries() == []
    with pytest.raises(TypeError):
        probe.connect()


def test_a_libvirt_module_gets_uri_and_timeout_and_its_libraries_checked(fake, monkeypatch):
    module_class()()
    assert fake[0].argument_spec["uri"] == dict(type="str", default=DEFAULT_URI)
    assert fake[0].argument_spec["timeout"] == dict(type="float", default=DEFAULT_TIMEOUT)
    monkeypatch.setattr(parser, "HAS_LXML", False)
    with pytest.raises(Failed):
        module_class(result=dict(ran=True)).execute()
    assert "lxml" in fake[1].exited["msg"] and "ran" not in fake[1].exited


def test_with_diff_only_in_diff_mode(fake):
    probe = module_class(uses_libvirt=False)()
    assert probe.with_diff({}, "a", "b") == {}
    probe.module._diff = True
    assert probe.with_diff({}, "a", "b", header="f") == dict(diff=dict(before="a", after="b", before_header="f",
                                                                       after_header="f"))


def test_modules_without_libvirt_run_where_libvirt_cannot_be_imported(tmp_path):
    """dhcp_info runs, and image imports, with libvirt unimportable; neither loads the libvirt layer."""
    script = textwrap.dedent("""
        import json, sys
        sys.modules["libvirt"] = None          # import libvirt raises ImportError
        from ansible.module_utils import basic
        from ansible_collections.kvmfleet.iaas.plugins.modules import dhcp_info, image
        loaded = [m for m, mod in sys.modules.items() if mod is not None and (m.startswith("libvirt")
                  or ".module_utils.libvirt" in m)]
        sys.stderr.write(json.dumps(loaded) + "\\n")
        args = {"hosts_dir": %r}
        try:
            from ansible.module_utils.testing import patch_module_args   # ansible-core >= 2.19
        except ImportError:
            basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
            dhcp_info.main()
        else:
            with patch_module_args(args):
                dhcp_info.main()
    """) % str(tmp_path / "none")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert json.loads(done.stderr.strip().splitlines()[0]) == [], done.stderr
    result = json.loads(done.stdout)
    assert "failed" not in result and result["reservations"] == [], result
