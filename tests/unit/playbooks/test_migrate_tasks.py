"""The vm_migrate call is written once (playbooks/tasks/migrate.yml) and imported by the four
playbooks that migrate."""
from pathlib import Path

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"


def _tasks(items):
    for item in items or ():
        yield item
        for key in ("block", "rescue", "always", "tasks"):
            yield from _tasks(item.get(key))


def test_one_vm_migrate_call_imported_by_every_playbook_that_migrates():
    callers = {}
    for path in sorted(PLAYBOOKS.glob("*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text())):
            assert "kvmfleet.iaas.vm_migrate" not in task, "%s calls vm_migrate itself" % path.name
            if task.get("ansible.builtin.import_tasks") == "tasks/migrate.yml":
                callers[path.stem] = set(task["vars"])
    assert sorted(callers) == ["evacuate_host", "migrate_vm", "patrol", "scale_vm"]
    wanted = {"kvmfleet_migrate_vm", "kvmfleet_migrate_from", "kvmfleet_migrate_to", "kvmfleet_migrate_options"}
    # kvmfleet_migrate_tenant: only where a tenant may ask for the move (docs/tenancy.md)
    assert all(found - {"kvmfleet_migrate_tenant"} == wanted for found in callers.values()), callers
    assert sorted(p for p, found in callers.items() if "kvmfleet_migrate_tenant" in found) == ["migrate_vm", "scale_vm"]
    calls = [t for t in _tasks(yaml.safe_load((PLAYBOOKS / "tasks" / "migrate.yml").read_text()))
             if "kvmfleet.iaas.vm_migrate" in t]
    assert len(calls) == 1 and calls[0]["register"] == "kvmfleet_migration"
    # the callers pass _src, _mo, ...: a task var of that name would make their value refer to itself
    assert all(name.startswith("_kvmfleet_migrate_") for name in calls[0]["vars"]), calls[0]["vars"]
