# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
  name: place
  author: kvmfleet developers (@kvmfleet)
  version_added: "0.1.0"
  short_description: Choose the hypervisor for a VM (creation, migration target, resize)
  description:
    - Reads each candidate host's C(kvmfleet_hypervisor) facts and its placement inventory
      variables (C(kvmfleet_maintenance), C(kvmfleet_disabled), the allocation ratios,
      C(kvmfleet_reserved_host_memory_mb), C(kvmfleet_cpu_threshold), C(kvmfleet_memory_threshold),
      C(kvmfleet_cpu_source), C(kvmfleet_host_labels))
      from O(_input) and returns the host the placement engine chooses, with the score breakdown
      of every host that fits and the reasons every other host was rejected.
    - Filters, projection of the VM's load and the strategies are described in docs/placement.md.
    - Fails with every host and every reason it was rejected when no host fits, when a VM to be
      created already exists on a host, or when the request is invalid.
  positional: _input, request
  options:
    _input:
      description: The C(hostvars) magic variable (or a dict of host name to host variables).
      type: dict
      required: true
    request:
      description: The VM to place.
      type: dict
      required: true
      suboptions:
        name:
          description: Name of the VM (libvirt domain name).
          type: str
          required: true
        vcpus:
          description: vCPUs the VM gets.
          type: int
          required: true
        memory_mb:
          description: Memory of the VM in MiB.
          type: int
          required: true
        disk_gb:
          description: Virtual size of its disks in GiB; V(0) for none (or shared storage on migration).
          type: int
          default: 0
        group:
          description: Affinity group (the C(group) of domains).
          type: str
        policy:
          description: V(anti-affinity) keeps members of O(request.group) on different hosts,
            V(affinity) keeps them on the hosts that already run members.
          type: str
          choices: [anti-affinity, affinity]
          default: anti-affinity
        hosts:
          description: Pin the VM to these hosts (one of them).
          type: list
          elements: str
        exclude:
          description: Hosts the VM must not go to.
          type: list
          elements: str
        virt_type:
          description: Domain type the host must offer (in its C(virt_types)), such as V(kvm) or V(qemu).
          type: str
        strategy:
          description: V(balanced) (free capacity minus imbalance), V(spread) (least allocated) or
            V(pack) (most allocated).
          type: str
          choices: [balanced, spread, pack]
          default: balanced
        current_host:
          description: Host the VM runs on now; set for a migration or a resize.
          type: str
        migrate:
          description: With O(request.current_host), choose a migration target, never the current host.
            Otherwise the request is a resize, kept on the current host when its size delta fits.
          type: bool
          default: false
        current_vcpus:
          description: Current vCPUs; default from the domain's facts on O(request.current_host).
          type: int
        current_memory_mb:
          description: Current memory in MiB; default from the domain's facts.
          type: int
        current_disk_gb:
          description: Current disk GiB; default from the domain's facts.
          type: int
        cpu_percent:
          description: Expected load of the VM in percent of one host CPU summed over its vCPUs.
            Default for migration is the domain's measured C(cpu_percent); otherwise each vCPU
            is projected at 100 / cpu allocation ratio percent.
          type: float
        labels:
          description:
            - Labels the host must carry, as a dict of label name to string value. A host passes
              when its C(kvmfleet_host_labels) inventory variable has every one of them with the same
              value (like a Kubernetes nodeSelector or Nova aggregate metadata); others are rejected
              with C(label KEY=VALUE missing) or C(label KEY is X, not VALUE).
            - "C(playbooks/create_vm.yml) passes it from C(-e '{\"labels\": {\"rack\": \"r1\"}}')."
          type: dict
    hosts:
      description:
        - Candidate hypervisors, normally C(groups['hypervisors']). Hosts without
          C(kvmfleet_hypervisor) are rejected with C(no facts gathered).
        - Default every host of O(_input) that has C(kvmfleet_hypervisor).
      type: list
      elements: str
"""

EXAMPLES = r"""
- name: Where does web3 go
  ansible.builtin.set_fact:
    web3_placement: >-
      {{ hostvars | kvmfleet.iaas.place({'name': 'web3', 'vcpus': 2, 'memory_mb': 2048, 'disk_gb': 10,
                                          'group': 'web', 'virt_type': 'kvm'},
                                         hosts=groups['hypervisors']) }}

- name: Say where and why
  ansible.builtin.debug:
    msg: "{{ web3_placement.host }}: {{ web3_placement.explanation }}"

- name: Only on hosts labelled ssd=true in rack r1 (their kvmfleet_host_labels carry both)
  ansible.builtin.debug:
    msg: "{{ (hostvars | kvmfleet.iaas.place({'name': 'db1', 'vcpus': 4, 'memory_mb': 8192, 'disk_gb': 50,
              'labels': {'ssd': 'true', 'rack': 'r1'}}, hosts=groups['hypervisors'])).host }}"

- name: Migration target for web1, which now runs on node1 (size and load from its facts)
  ansible.builtin.debug:
    msg: "{{ (hostvars | kvmfleet.iaas.place({'name': 'web1', 'current_host': 'node1', 'migrate': true},
              hosts=groups['hypervisors'])).host }}"

- name: Can web1 grow to 4 vCPUs and 4 GiB where it is
  ansible.builtin.debug:
    msg: "{{ hostvars | kvmfleet.iaas.place({'name': 'web1', 'vcpus': 4, 'memory_mb': 4096, 'disk_gb': 10,
              'current_host': 'node1', 'hosts': ['node1']}, hosts=groups['hypervisors']) }}"
"""

RETURN = r"""
  _value:
    description: The decision.
    type: dict
    contains:
      host:
        description: The chosen host.
        type: str
      strategy:
        description: The strategy used.
        type: str
      score:
        description: The chosen host's score (higher is better).
        type: float
      explanation:
        description: One line saying why, with the score formula and utilization after placement.
        type: str
      breakdown:
        description: Score terms, allocated fractions before and after, projected live utilization
          and the demand counted on the chosen host.
        type: dict
      scores:
        description: The breakdown of every host that fits, by host name.
        type: dict
      rejected:
        description: Every host that does not fit, with the list of all its reasons.
        type: dict
      moved_from:
        description: The current host when the VM moves, else null.
        type: str
"""

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.filter_errors import filter_errors
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import FACTS_VAR, plain, host_vars
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import (
    INVENTORY_DEFAULTS,
    Fleet,
    Host,
    Request,
)


def _domain(facts, name):
    for dom in (facts or {}).get("domains") or ():
        if dom.get("name") == name:
            return dom
    return None


@filter_errors
def place(hostvars, request, hosts=None):
    """hostvars | kvmfleet.iaas.place(request, hosts=groups['hypervisors']) -> decision dict"""
    if not isinstance(request, dict) and not hasattr(request, "keys"):
        raise ValidationError("place: request must be a dict, got %s" % type(request).__name__)
    request = plain(request)
    if hosts is None:
        hosts = [h for h in hostvars.keys() if host_vars(hostvars, h).get(FACTS_VAR)]
    elif isinstance(hosts, str):
        hosts = [hosts]
    model = []
    facts_by_host = {}
    for name in sorted(set(str(h) for h in hosts)):
        variables = host_vars(hostvars, name)
        facts = variables.get(FACTS_VAR)
        facts = plain(facts) if facts else None
        facts_by_host[name] = facts
        inventory = {key: plain(variables.get(key)) for key in INVENTORY_DEFAULTS}
        model.append(Host.from_facts(name, facts, inventory))
    current = request.get("current_host")
    if current:
        # An existing VM: its size (and, for a migration, its measured load) from its facts.
        dom = _domain(facts_by_host.get(current), request.get("name"))
        if dom is not None:
            disk = sum((d.get("capacity_gb") or 0) for d in dom.get("disks") or ())
            for key, value in (("vcpus", dom.get("vcpus")), ("memory_mb", dom.get("memory_mb")),
                               ("disk_gb", disk)):
                if request.get(key) is None and value is not None:
                    request[key] = value
            if request.get("migrate") and request.get("cpu_percent") is None and dom.get("cpu_percent") is not None:
                request["cpu_percent"] = dom["cpu_percent"]
    fleet = Fleet(model, use_index=False)
    return fleet.place(Request.from_dict(request), explain=True).to_dict()


class FilterModule(object):
    def filters(self):
        return {"place": place}
