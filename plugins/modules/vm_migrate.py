#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_migrate
short_description: Live-migrate a VM from this hypervisor to another
version_added: "0.1.0"
description:
  - Runs on the source hypervisor (use C(delegate_to)) and migrates the VM O(name)
    peer-to-peer to the hypervisor at O(destination_uri); the source libvirtd connects to the
    destination's itself, over the transport the URI names.
  - The migration runs in a background thread while the module polls libvirt's job statistics;
    it switches to post-copy (O(post_copy_after_seconds), O(post_copy_after_iterations)) and
    enforces O(migration_timeout) with O(timeout_action) from there.
  - The source definition is removed only after the destination runs the VM. If anything fails
    before that, the VM still runs on the source with its definition intact.
  - A VM that is no longer on the source but is defined on the destination is reported ok and
    unchanged, so a repeated run does nothing.
  - A VM that is defined but shut off on the source is moved offline (only its definition).
options:
  name:
    description: Name of the VM (libvirt domain).
    type: str
    required: true
  destination_uri:
    description:
      - libvirt URI of the destination hypervisor, as the C(kvmfleet.iaas.migration_uri) filter
        builds it from the destination's inventory entry, for example
        V(qemu+ssh://root@10.0.0.12/system).
      - Only C(qemu+ssh) and C(qemu+tls) are accepted, C(qemu+tcp) only with O(allow_insecure_transport).
    type: str
    required: true
  destination:
    description: The destination's inventory name, echoed in RV(destination); defaults to its libvirt host name.
    type: str
  allow_insecure_transport:
    description:
      - Accept a C(qemu+tcp) destination (no authentication, no encryption).
      - Set it only where the inventory asks for plain TCP (C(kvm_migration_transport=tcp)).
    type: bool
    default: false
  live:
    description: Keep the VM running while its memory is copied. V(false) pauses it for the whole copy.
    type: bool
    default: true
  persistent:
    description: Define the VM persistently on the destination (with its source configuration).
    type: bool
    default: true
  undefine_source:
    description: Remove the definition from the source once the destination runs the VM.
    type: bool
    default: true
  storage:
    description:
      - V(shared) when both hosts see the VM's disks at the same path (NFS, the image store).
      - V(copy_all) copies every disk to the destination, V(copy_incremental) only what the
        overlays add to backing images the destination already has. The destination needs
        the disk files pre-created for both.
    type: str
    choices: [shared, copy_all, copy_incremental]
    default: shared
  unsafe_reason:
    description:
      - With O(storage=shared), skip libvirt's check that the disks are on a file system it
        knows to be shared (it answers "Migration without shared storage is unsafe" otherwise).
      - Give the reason the storage is nonetheless shared; it is returned in RV(unsafe_reason)
        and shown as a warning. The playbooks pass the inventory's C(kvmfleet_migration_unsafe_reason).
    type: str
  auto_converge:
    description: Let qemu throttle the guest's vCPUs when memory is dirtied faster than it is sent.
    type: bool
    default: false
  auto_converge_initial:
    description: First throttle of auto-converge, in percent of CPU time (qemu's default 20). Needs O(auto_converge).
    type: int
  auto_converge_increment:
    description: Throttle added at each further pass, in percent (qemu's default 10). Needs O(auto_converge).
    type: int
  post_copy:
    description:
      - Allow switching to post-copy, where the VM runs on the destination and fetches the pages
        it still lacks from the source. A post-copy migration always finishes, but if the network
        fails after the switch the VM is lost on both sides.
      - Without O(post_copy_after_seconds) or O(post_copy_after_iterations) the switch comes after
        the first full pass of memory.
    type: bool
    default: false
  post_copy_after_seconds:
    description: Switch to post-copy this many seconds after the start. Needs O(post_copy).
    type: float
  post_copy_after_iterations:
    description: Switch to post-copy once this many passes over memory are complete. Needs O(post_copy).
    type: int
  bandwidth:
    description: Cap the migration stream at this many MiB/s (also after a switch to post-copy).
    type: int
  max_downtime:
    description: Longest pause, in milliseconds, qemu may plan for the final switch-over.
    type: int
  compression:
    description: Compress memory pages (V(xbzrle) delta compression, V(mt) multi-threaded zlib).
    type: str
    choices: [none, xbzrle, mt]
    default: none
  parallel_connections:
    description: Send memory over this many parallel connections (qemu multifd).
    type: int
  migration_timeout:
    description: Seconds the migration may take before O(timeout_action). Unset waits without limit.
    type: float
  timeout_action:
    description:
      - V(abort) cancels the migration (the VM stays on the source) and fails the task.
      - V(postcopy) switches to post-copy, which then finishes the migration.
    type: str
    choices: [abort, postcopy]
    default: abort
  poll_interval:
    description:
      - Seconds between two polls of the job statistics, which drive the timeout and the post-copy
        switch. Each poll queries QEMU, which slows the migration a little; a I(max_downtime) is
        applied within 50 ms of the start whatever this is.
    type: float
    default: 0.25
  tenant:
    description:
      - Act only on a VM this tenant owns (the C(tenant) of its kvmfleet metadata, docs/tenancy.md);
        a VM of another tenant or of the operator is refused exactly as a VM that does not exist.
      - Unset, the operator acts on every VM.
    type: str
extends_documentation_fragment:
  - kvmfleet.iaas.connection
attributes:
  check_mode:
    support: full
    description: Connects to both hosts and reports whether the VM would move, moving nothing.
  diff_mode:
    support: none
    description: No definition changes; the VM moves.
notes:
  - O(uri) is the source (the host the task runs on); O(timeout) limits each single libvirt
    call, including connecting to the destination, not the migration (see O(migration_timeout)).
  - The module connects to the destination itself before migrating, so an unreachable
    destination fails fast with the VM untouched.
seealso:
  - module: kvmfleet.iaas.vm_info
author:
  - kvmfleet developers (@kvmfleet)
"""

EXAMPLES = r"""
- name: Move web1 from node1 to node2 over the inventory's transport
  kvmfleet.iaas.vm_migrate:
    name: web1
    destination: node2
    destination_uri: "{{ 'node2' | kvmfleet.iaas.migration_uri(hostvars) }}"
  delegate_to: node1
  register: moved

- name: A busy VM, capped at 100 MiB/s, post-copy if it has not converged in 60 s
  kvmfleet.iaas.vm_migrate:
    name: db1
    destination_uri: qemu+ssh://root@10.0.0.13/system
    bandwidth: 100
    auto_converge: true
    migration_timeout: 60
    timeout_action: postcopy
  delegate_to: node1

- name: Hosts without shared storage copy the disks' new data
  kvmfleet.iaas.vm_migrate:
    name: web2
    destination_uri: qemu+ssh://root@10.0.0.13/system
    storage: copy_incremental
  delegate_to: node2
"""

RETURN = r"""
seed_copied:
  description:
    - True when the VM's cloud-init seed was copied to the same path on the destination ahead of a
      copied-storage migration (libvirt copies no read-only disk); absent otherwise.
  returned: when the VM has a seed and O(storage) copies disks
  type: bool
source:
  description: Host name of the source hypervisor (libvirt's).
  returned: always
  type: str
  sample: node1
destination:
  description: The destination, as O(destination) or its libvirt host name.
  returned: always
  type: str
  sample: node2
action:
  description:
    - V(migrated) (live), V(moved_offline) (a shut-off VM's definition), V(finished) (the VM already
      ran on the destination; the leftover source definition was removed), V(already_there) (nothing done).
  returned: always
  type: str
  sample: migrated
flags:
  description: The libvirt migration flags used (names without VIR_MIGRATE_).
  returned: when the VM moves
  type: list
  elements: str
  sample: [PEER2PEER, ABORT_ON_ERROR, LIVE, PERSIST_DEST, UNSAFE]
unsafe_reason:
  description: O(unsafe_reason), when libvirt's shared-storage check was skipped.
  returned: always
  type: str
postcopy:
  description: Whether the migration switched to post-copy.
  returned: always
  type: bool
stats:
  description: From libvirt's completed-job statistics; null in check mode and when nothing moved.
  returned: always
  type: dict
  contains:
    total_time_ms:
      description: Time the migration took, in ms.
      type: int
    downtime_ms:
      description: Time the VM was paused for the switch-over, in ms.
      type: int
    setup_time_ms:
      description: Time spent setting up the migration, in ms.
      type: int
    data_transferred_mib:
      description: Data sent, in MiB (memory, disks and state).
      type: float
    data_transferred_bytes:
      description: Data sent, in bytes.
      type: int
    memory_transferred_mib:
      description: Memory sent, in MiB.
      type: float
    memory_total_mib:
      description: Guest memory, in MiB.
      type: float
    disk_transferred_mib:
      description: Disk data copied (O(storage) copy modes), in MiB.
      type: float
    memory_iterations:
      description: Passes over the guest memory.
      type: int
    dirty_rate_mib_s:
      description: Rate at which the guest dirtied memory, last measured, in MiB/s.
      type: float
    bandwidth_mib_s:
      description: Memory transfer rate, last measured, in MiB/s.
      type: float
    postcopy_requests:
      description: Pages the destination requested during post-copy.
      type: int
    auto_converge_throttle_percent:
      description: CPU throttle auto-converge applied at the end, in percent.
      type: int
progress:
  description: Samples of the running migration, at most one per second.
  returned: when the VM moves
  type: list
  elements: dict
  sample: [{elapsed_s: 1.0, iteration: 1, remaining_mib: 80.5, transferred_mib: 120.1, dirty_rate_mib_s: null, throttle_percent: null}]
"""

from ansible_collections.kvmfleet.iaas.plugins.module_utils import migration
from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.migrate import MigrateOps
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection


class VmMigrate(KvmfleetModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        destination_uri=dict(type="str", required=True),
        destination=dict(type="str"),
        allow_insecure_transport=dict(type="bool", default=False),
        live=dict(type="bool", default=True),
        persistent=dict(type="bool", default=True),
        undefine_source=dict(type="bool", default=True),
        storage=dict(type="str", default="shared", choices=list(migration.STORAGE_MODES)),
        unsafe_reason=dict(type="str"),
        auto_converge=dict(type="bool", default=False),
        auto_converge_initial=dict(type="int"),
        auto_converge_increment=dict(type="int"),
        post_copy=dict(type="bool", default=False),
        post_copy_after_seconds=dict(type="float"),
        post_copy_after_iterations=dict(type="int"),
        bandwidth=dict(type="int"),
        max_downtime=dict(type="int"),
        compression=dict(type="str", default="none", choices=list(migration.COMPRESSION_METHODS)),
        parallel_connections=dict(type="int"),
        migration_timeout=dict(type="float"),
        timeout_action=dict(type="str", default="abort", choices=list(migration.TIMEOUT_ACTIONS)),
        poll_interval=dict(type="float", default=0.25),
        tenant=dict(type="str"),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        p = self.params
        migration.check_destination_uri(p["destination_uri"], p["allow_insecure_transport"])
        options = dict((key, p[key]) for key in migration.PLAN_OPTIONS)
        migration.plan_migration(options)  # validate before touching anything
        if p["poll_interval"] <= 0:
            raise ValidationError("poll_interval must be > 0", option="poll_interval")
        with self.connect() as src:
            ops = MigrateOps(src, lambda: VirtConnection(p["destination_uri"], timeout=p["timeout"]), p["name"],
                             p["destination_uri"], destination=p["destination"], poll_interval=p["poll_interval"],
                             check_mode=self.module.check_mode, warn=self.module.warn, tenant=p["tenant"])
            return ops.move(options)


def main():
    VmMigrate.execute()


if __name__ == "__main__":
    main()
