"""kvmfleet.iaas.quota claims, releases and reports a tenant's quota on the controller: the rules
through plugin_utils/quota_task.py (what the action runs), two processes claiming at once, and
the action itself in one ansible-playbook run on localhost (options, inventory variables,
defaults, check mode, the refusals as msg)."""
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import CLAIM_SECONDS, QuotaExceeded
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils import quota_ledger
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.quota_task import quota_task

REPO = Path(__file__).resolve().parents[4]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

TENANTS = {"acme": {"quota": {"vcpus": 8, "memory_mb": 8192, "vms": 3}}, "initech": {}}
DEFAULT_QUOTA = {"disk_gb": 50}


def dom(name, tenant, vcpus=2, memory_mb=1024, disk_gb=10):
    return {"name": name, "tenant": tenant, "vcpus": vcpus, "memory_mb": memory_mb,
            "disks": [{"target": "vda", "capacity_gb": disk_gb}], "metadata": {"tenant": tenant} if tenant else {}}


def facts(*domains):
    return {"reachable": True, "hostname": "hv", "domains": list(domains)}


# acme holds 2 VMs (4 vCPUs, 2048 MiB, 20 GiB); initech's and the operator's are not counted
HOSTVARS = {"hv1": {"kvmfleet_hypervisor": facts(dom("a1", "acme"), dom("ops1", None, vcpus=16))},
            "hv2": {"kvmfleet_hypervisor": facts(dom("a2", "acme"), dom("i1", "initech", vcpus=4))}}
SMALL = {"vcpus": 2, "memory_mb": 1024, "disk_gb": 10, "vms": 1}


def run(state_dir, hostvars=None, check_mode=False, clock=None, **args):
    args.setdefault("tenant", "acme")
    args.setdefault("hosts", sorted(hostvars or HOSTVARS))
    return quota_task(args, TENANTS, DEFAULT_QUOTA, hostvars or HOSTVARS, str(state_dir), check_mode=check_mode,
                      clock=clock)


def test_a_claim_within_the_quota_is_recorded_with_its_numbers(tmp_path):
    result = run(tmp_path, vm="a3", demand=SMALL)
    assert result["claimed"] is True and result["key"] == "a3"
    assert result["quota"] == {"vcpus": 8, "memory_mb": 8192, "disk_gb": 50, "vms": 3}
    assert result["used"] == {"vcpus": 4, "memory_mb": 2048, "disk_gb": 20, "vms": 2}
    assert result["asked"] == SMALL
    assert result["after"] == {"vcpus": 6, "memory_mb": 3072, "disk_gb": 30, "vms": 3}
    assert result["complete"] is True
    ledger = json.loads((tmp_path / "acme.json").read_text())
    assert ledger["a3"]["demand"] == SMALL


def test_over_the_quota_names_used_asked_and_limit(tmp_path):
    with pytest.raises(QuotaExceeded) as err:
        run(tmp_path, vm="a3", demand={"vcpus": 6, "memory_mb": 512, "vms": 1})
    assert str(err.value) == "tenant acme is over its quota: vCPUs: 4 used + 6 asked > 8 allowed"
    assert err.value.details["over"] == {"vcpus": {"used": 4, "asked": 6, "limit": 8}}
    assert not (tmp_path / "acme.json").exists()


def test_two_claims_together_over_the_quota_the_second_is_refused(tmp_path):
    run(tmp_path, vm="a3", demand={"vcpus": 3, "vms": 0})
    with pytest.raises(QuotaExceeded, match=r"^tenant acme is over its quota: vCPUs: 7 used \+ 3 asked > 8 allowed$"):
        run(tmp_path, vm="a4", demand={"vcpus": 3})
    # a re-claim of the same VM replaces its own claim instead of adding to it
    again = run(tmp_path, vm="a3", demand={"vcpus": 4})
    assert again["used"]["vcpus"] == 4 and again["after"]["vcpus"] == 8


def test_release_then_claim_passes_and_releasing_nothing_is_fine(tmp_path):
    run(tmp_path, vm="a3", demand=SMALL)
    with pytest.raises(QuotaExceeded, match=r"VMs: 3 used \+ 1 asked > 3 allowed"):
        run(tmp_path, vm="a4", demand=SMALL)
    assert run(tmp_path, vm="a3", state="released")["released"] is True
    assert run(tmp_path, vm="a3", state="released")["released"] is False
    assert run(tmp_path, vm="never", state="released", hosts=[])["released"] is False   # reads no facts
    assert run(tmp_path, vm="a4", demand=SMALL)["claimed"] is True


def test_a_scale_claim_counts_while_its_vm_is_visible(tmp_path):
    scale = run(tmp_path, vm="a1", kind="scale", demand={"vcpus": 3})
    assert scale["key"] == "scale:a1" and scale["after"]["vcpus"] == 7
    # a1 is in the facts: a create claim of that name would no longer count, the scale's does
    with pytest.raises(QuotaExceeded, match=r"vCPUs: 7 used \+ 2 asked > 8 allowed"):
        run(tmp_path, vm="a3", demand=SMALL)
    assert run(tmp_path, state="query")["used"]["vcpus"] == 7
    assert run(tmp_path, vm="a1", kind="scale", state="released")["released"] is True
    assert run(tmp_path, vm="a1", state="released")["released"] is False     # create and scale keys are apart
    assert run(tmp_path, vm="a3", demand=SMALL)["claimed"] is True


def test_a_create_claim_stops_counting_once_the_facts_show_its_vm(tmp_path):
    run(tmp_path, vm="a3", demand=SMALL)
    shown = dict(HOSTVARS, hv3={"kvmfleet_hypervisor": facts(dom("a3", "acme"))})
    query = run(tmp_path, hostvars=shown, state="query")
    assert query["used"]["vms"] == 3 and query["claims"] == {}           # once, from the facts
    # another tenant's VM of that name does not hide acme's claim
    taken = dict(HOSTVARS, hv3={"kvmfleet_hypervisor": facts(dom("a3", "initech"))})
    query = run(tmp_path, hostvars=taken, state="query")
    assert query["used"]["vms"] == 3 and query["claims"] == {"a3": SMALL}


def test_an_expired_claim_no_longer_counts(tmp_path):
    start = time.time()
    run(tmp_path, vm="a3", demand=SMALL, clock=lambda: start)
    later = run(tmp_path, state="query", clock=lambda: start + CLAIM_SECONDS + 1)
    assert later["used"]["vms"] == 2 and later["claims"] == {}


def test_query_reports_quota_and_used_with_the_live_claims(tmp_path):
    run(tmp_path, vm="a3", demand=SMALL)
    query = run(tmp_path, state="query")
    assert query["quota"] == {"vcpus": 8, "memory_mb": 8192, "disk_gb": 50, "vms": 3}
    assert query["used"] == {"vcpus": 6, "memory_mb": 3072, "disk_gb": 30, "vms": 3}
    assert query["claims"] == {"a3": SMALL} and query["complete"] is True
    assert run(tmp_path, state="query", tenant="initech")["used"]["vcpus"] == 4


@pytest.mark.parametrize("args, message", [
    (dict(tenant="globex"), r"^tenant='globex': no such tenant \(declare it in kvmfleet_tenants\)$"),
    (dict(tenant="../acme"), r"must be an RFC 1123 hostname label"),
    (dict(tenant=""), r"^tenant is required: a quota is a tenant's"),
    (dict(vm=None), r"^vm is required with state=claimed"),
    (dict(vm="Web1"), r"^vm='Web1': must be lowercase"),
    (dict(kind="grow"), r"^kind='grow': must be one of create, scale$"),
    (dict(state="taken"), r"^state='taken': must be one of claimed, released, query$"),
    (dict(demand={"cpus": 2}), r"^demand: unknown key cpus \(known: vcpus, memory_mb, disk_gb, vms\)$"),
    (dict(demand={"vcpus": -1}), r"^demand\.vcpus: must be a whole number >= 0"),
    (dict(demand={"vcpus": "two"}), r"^demand\.vcpus: must be a whole number >= 0, got 'two'"),
    (dict(demand=[2]), r"^demand: must be a mapping"),
    (dict(hosts=["hv9"]), r"^hv9 is not in the inventory$"),
    (dict(hosts=[]), r"^no hypervisors to count tenant acme's usage on"),
])
def test_bad_requests_are_refused_before_anything_is_written(tmp_path, args, message):
    request = dict(vm="a3", demand=SMALL)
    request.update(args)
    with pytest.raises(ValidationError, match=message):
        run(tmp_path, **request)
    assert not tmp_path.joinpath("acme.json").exists()


def test_an_unreachable_host_is_refused_unless_ignored(tmp_path):
    down = dict(HOSTVARS, hv3={"kvmfleet_hypervisor": {"reachable": False, "error": "libvirt did not answer"}},
                hv4={})
    for state in ("claimed", "query"):
        with pytest.raises(ValidationError) as err:
            run(tmp_path, hostvars=down, vm="a3", demand=SMALL, state=state)
        # the tenant reads it: no host, no libvirt or SSH error (they are in the details, for the operator)
        assert str(err.value) == ("cannot count tenant acme's usage while 2 hypervisor(s) cannot be read (their VMs "
                                  "would be missed); try again later, or ask the operator"), str(err.value)
        assert sorted(err.value.details["unreachable"]) == ["hv3", "hv4"]
    assert not tmp_path.joinpath("acme.json").exists()
    ignored = run(tmp_path, hostvars=down, vm="a3", demand=SMALL, ignore_unreachable=True)
    assert ignored["claimed"] is True and ignored["complete"] is False and ignored["used"]["vms"] == 2


def test_check_mode_checks_and_writes_nothing(tmp_path):
    state_dir = tmp_path / "state"
    predicted = run(state_dir, vm="a3", demand=SMALL, check_mode=True)
    assert predicted["claimed"] is True and predicted["after"]["vms"] == 3
    with pytest.raises(QuotaExceeded):
        run(state_dir, vm="a3", demand={"vcpus": 9}, check_mode=True)
    assert run(state_dir, vm="a3", state="released", check_mode=True)["released"] is False
    assert not state_dir.exists()
    # with a ledger there: its claims are counted, the file is left as it was
    run(state_dir, vm="a3", demand=SMALL)
    before = sorted((p.name, p.read_bytes()) for p in state_dir.iterdir())
    with pytest.raises(QuotaExceeded, match=r"VMs: 3 used \+ 1 asked > 3 allowed"):
        run(state_dir, vm="a4", demand=SMALL, check_mode=True)
    assert run(state_dir, vm="a3", state="released", check_mode=True)["released"] is True
    assert sorted((p.name, p.read_bytes()) for p in state_dir.iterdir()) == before


class SlowLedger(quota_ledger.QuotaLedger):
    """Reads, then dawdles: without the lock both racers would read the same empty ledger."""

    def _read(self, tenant):
        claims = super()._read(tenant)
        time.sleep(0.3)
        return claims


def _race(state_dir, vm, barrier, results):
    quota_ledger.QuotaLedger = SlowLedger       # this forked process only
    from ansible_collections.kvmfleet.iaas.plugins.plugin_utils import quota_task as task
    task.QuotaLedger = SlowLedger
    barrier.wait()
    try:
        run(state_dir, vm=vm, demand=SMALL)
        results.put((vm, "claimed"))
    except QuotaExceeded as err:
        results.put((vm, str(err)))


def test_two_processes_claiming_at_once_exactly_one_passes(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race, args=(str(tmp_path), vm, barrier, results)) for vm in ("a3", "a4")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    outcomes = sorted(results.get(timeout=5) for _worker in workers)
    assert [outcome for _vm, outcome in outcomes].count("claimed") == 1, outcomes
    assert any("VMs: 3 used + 1 asked > 3 allowed" in outcome for _vm, outcome in outcomes), outcomes


# ------------------------------------------------------------------ the action in a real run

PLAY = """
- hosts: hv1
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        kvmfleet_hypervisor: %(facts)s
- hosts: localhost
  gather_facts: false
  vars:
    two: "{{ 1 + 1 }}"
  tasks:
    - name: claim, the demand templated (strings of digits)
      kvmfleet.iaas.quota:
        tenant: acme
        vm: a3
        demand: {vcpus: "{{ two }}", memory_mb: "1024", disk_gb: 10, vms: 1}
      register: claim
    - name: over the quota
      kvmfleet.iaas.quota:
        tenant: acme
        vm: a4
        demand: {vcpus: 1, vms: 1}
      register: over
      ignore_errors: true
    - name: unknown tenant
      kvmfleet.iaas.quota: {tenant: globex, vm: a4, demand: {vms: 1}}
      register: unknown
      ignore_errors: true
    - name: an unreachable hypervisor
      kvmfleet.iaas.quota: {tenant: acme, state: query, hosts: [hv1, hv2]}
      register: unreachable
      ignore_errors: true
    - name: an unreachable hypervisor ignored
      kvmfleet.iaas.quota: {tenant: acme, state: query, hosts: [hv1, hv2], ignore_unreachable: true}
      register: ignored
    - name: no vm
      kvmfleet.iaas.quota: {tenant: acme, demand: {vms: 1}}
      register: no_vm
      ignore_errors: true
    - name: release, checked only
      kvmfleet.iaas.quota: {tenant: acme, vm: a3, state: released}
      check_mode: true
      register: release_checked
    - name: release
      kvmfleet.iaas.quota: {tenant: acme, vm: a3, state: released}
      register: release
    - name: query
      kvmfleet.iaas.quota: {tenant: acme, state: query}
      register: query
    - name: claim in check mode, in a state directory of its own
      kvmfleet.iaas.quota: {tenant: acme, vm: a5, demand: {vms: 1}, state_dir: "%(tmp)s/checked"}
      check_mode: true
      register: checked
    - ansible.builtin.debug:
        msg: "RESULTS {{ {'claim': claim, 'over': over, 'unknown': unknown, 'unreachable': unreachable,
                          'ignored': ignored, 'no_vm': no_vm, 'release_checked': release_checked,
                          'release': release, 'query': query, 'checked': checked} | to_json }}"
"""


@pytest.mark.skipif(not os.access(str(PLAYBOOK), os.X_OK), reason="no ansible-playbook beside python")
def test_the_action_in_a_playbook(tmp_path):
    hv_facts = facts(dom("a1", "acme"), dom("ops1", None, vcpus=16))
    play = tmp_path / "play.yml"
    play.write_text(PLAY % dict(facts=json.dumps(hv_facts), tmp=str(tmp_path)))
    inventory = tmp_path / "inv.yml"
    inventory.write_text(json.dumps({"all": {
        "vars": {"kvmfleet_tenants": {"acme": {"quota": {"vcpus": "{{ acme_vcpus }}", "vms": 2}}},
                 "acme_vcpus": 4, "kvmfleet_quota_state_dir": str(tmp_path / "ledger")},
        "children": {"hypervisors": {"hosts": {"hv1": {"ansible_connection": "local"}}}},
        "hosts": {"hv2": {"ansible_connection": "local"}}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_LOCAL_TEMP=str(tmp_path),
               HOME=str(tmp_path))
    proc = subprocess.run([str(PLAYBOOK), str(play), "-i", str(inventory)], env=env, text=True, capture_output=True,
                          timeout=300, check=False)
    found = re.search(r"^ok: \[localhost\] => (\{\n\s+\"msg\": \"RESULTS .*?\n\})$", proc.stdout, re.M | re.S)
    assert found, proc.stdout + proc.stderr
    r = json.loads(json.loads(found.group(1))["msg"].split(" ", 1)[1])
    claim = r["claim"]
    assert claim["claimed"] is True and claim["changed"] is False, claim
    assert claim["quota"] == {"vcpus": 4, "memory_mb": None, "disk_gb": None, "vms": 2}       # templated inventory
    assert claim["used"] == {"vcpus": 2, "memory_mb": 1024, "disk_gb": 10, "vms": 1}          # hosts: the hypervisors
    assert claim["asked"] == {"vcpus": 2, "memory_mb": 1024, "disk_gb": 10, "vms": 1}
    over = r["over"]
    assert over["failed"] and over["msg"] == ("tenant acme is over its quota: vCPUs: 4 used + 1 asked > 4 allowed; "
                                              "VMs: 2 used + 1 asked > 2 allowed"), over
    assert over["over"]["vms"] == {"used": 2, "asked": 1, "limit": 2} and over["changed"] is False
    assert r["unknown"]["msg"] == "tenant='globex': no such tenant (declare it in kvmfleet_tenants)"
    assert r["unreachable"]["failed"] and r["unreachable"]["msg"].startswith(
        "cannot count tenant acme's usage while 1 hypervisor(s) cannot be read"), r["unreachable"]
    assert "hv2" not in json.dumps(r["unreachable"])
    assert r["ignored"]["complete"] is False and r["ignored"]["used"]["vms"] == 2
    assert r["no_vm"]["failed"] and "vm" in r["no_vm"]["msg"], r["no_vm"]
    assert r["release_checked"]["released"] is True
    assert r["release"]["released"] is True and r["release"]["changed"] is False
    assert json.loads((tmp_path / "ledger" / "acme.json").read_text()) == {}     # kvmfleet_quota_state_dir
    assert r["query"]["used"]["vms"] == 1 and r["query"]["claims"] == {}
    assert r["checked"]["claimed"] is True and not (tmp_path / "checked").exists()
