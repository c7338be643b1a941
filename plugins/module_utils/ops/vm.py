# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vm module's work on one host: gather the VM's state, run vmplan's steps, undo a failed create.

``VmOps.ensure`` brings a VM to present/running/stopped, ``VmOps.remove`` deletes it with the disk
kvmfleet made for it. Both return the module's result dict (check mode predicts it, diff mode adds
the domain XML before and after). The decisions are vmplan's; this file only reads and acts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

import os

from ansible_collections.kvmfleet.iaas.plugins.module_utils import vmplan
from ansible_collections.kvmfleet.iaas.plugins.module_utils.cloudinit.seed import SeedDocuments, network_config
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import DomainNotFound, KvmfleetError, NotManaged, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import derive_mac, normalize_mac
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.ownership import find_visible_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.seed import SeedMaker, seed_path
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import validate_vm_request
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.diff import diff_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import build_domain_xml, domain_facts, parse_domain, pretty
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.images import check_tenant_image_path
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.metadata import with_seed_digest
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import seed_of

_GIB = 1024 ** 3


class VmOps:
    """The vm module's steps over ``virt`` (a VirtConnection).

    ``reconnect`` opens a fresh VirtConnection (a context manager) for the rollback: the failed call
    may have timed out, which leaves ``virt`` unusable.
    """

    def __init__(self, virt, reconnect, check_mode=False, diff=False, seeds=None):
        self.virt = virt
        self.reconnect = reconnect
        self.seeds = seeds      # ops.seed.SeedMaker: cloud-init seeds (None: this run makes none)
        self.check_mode = check_mode
        self.diff = diff

    # ---- present / running / stopped

    def ensure(self, state, request, pool_name, domain_options, mac=None, autostart=None, stop_timeout=60.0,
               cloud_init=None):
        """Bring the VM of ``request`` (vmspec request fields) to ``state``.

        ``domain_options`` are vmplan.desired_domain's keyword arguments (bridge, domain_type,
        console_dir, serial, cpu_mode, machine). ``cloud_init`` (None: no seed) holds
        ssh_authorized_keys, user_data, hostname and ipv4 ({address, network, gateway, nameservers}).
        """
        virt = self.virt
        dom = virt.find_domain(request["name"])
        pool = virt.lookup_pool(pool_name)
        if pool is None:
            raise ValidationError("storage pool %s does not exist on %s (onboard the node with the setup role)"
                                  % (pool_name, virt.hostname()), field="pool", value=pool_name)
        pool_dir = virt.pool_dir(pool)
        host = virt.host_info()
        if domain_options.get("tenant") is not None and request.get("image") is not None:
            # The controller resolved the tenant's image; its real path, through symlinks, is
            # checked again where the file is, before its existence is: never another tenant's.
            image = request["image"]
            check_tenant_image_path(os.path.realpath(pool_dir), os.path.realpath(os.path.join(pool_dir, image)),
                                    domain_options["tenant"], shown=image)
        spec = validate_vm_request(request, host_max_vcpus=host["cpus"], host_memory_mb=host["memory_mb"],
                                   pool_dir=pool_dir)
        disk_name = vmplan.volume_name(spec.name)
        disk_path = "%s/%s" % (pool_dir.rstrip("/"), disk_name)
        mac = normalize_mac(mac) if mac else derive_mac(spec.name)
        documents = self.seed_documents(spec.name, mac, cloud_init)
        seed = seed_path(pool_dir, spec.name) if documents is not None else None
        desired = vmplan.desired_domain(spec, disk_path, mac, seed_path=seed,
                                        seed_digest=documents.digest() if documents is not None else None,
                                        **domain_options)
        volume = virt.lookup_volume(pool, disk_name)
        current, before_xml, actual = None, "", None
        if dom is not None:
            before_xml = virt.domain_xml(dom, inactive=True)
            actual = parse_domain(before_xml)
            current = dict(managed=actual.managed, state=virt.domain_state(dom), autostart=virt.autostart(dom))
            capacity = self.volume_gb(volume) if volume is not None else None
            differences = diff_domain(desired, actual) if current["managed"] else {}
            # VMs made before every VM had the agent's channel keep theirs as they are.
            differences.pop("guest_agent", None)
            if desired.tenant is None:
                differences.pop("tenant", None)    # the operator acts on every tenant's VMs
            vmplan.check_existing(spec.name, current, differences, spec.disk_gb, capacity)
        seed_steps = vmplan.plan_seed(current, desired.seed_digest, actual.seed_digest if actual else None,
                                      seed is not None and os.path.exists(seed))
        try:
            steps = vmplan.plan_vm(state, current, volume is not None, autostart, seed_steps)
        except KvmfleetError as err:
            err.msg = "VM %s: %s" % (spec.name, err.msg)
            raise
        after_xml = build_domain_xml(desired) if dom is None else before_xml
        instance_xml = None
        if dom is not None and vmplan.WRITE_SEED in steps:
            after_xml, instance_xml = with_seed_digest(before_xml, desired.seed_digest)
        if steps and not self.check_mode:
            dom = self.apply(steps, pool, dom, spec, after_xml, pool_name, stop_timeout,
                             seed=(seed, documents, instance_xml))
        result = dict(changed=bool(steps), steps=steps,
                      vm=self.describe(dom, spec, desired, disk_path, steps, vmplan.predicted_state(state, current, steps),
                                       vmplan.predicted_autostart(current, autostart)))
        if self.diff:
            result["diff"] = dict(before=pretty(before_xml) if before_xml else "", after=pretty(after_xml),
                                  before_header="%s (defined)" % spec.name if before_xml else "(none)",
                                  after_header=spec.name)
        return result

    def seed_documents(self, name, mac, cloud_init):
        """The seed's documents for ``cloud_init`` (checked), or None when no seed is asked."""
        options = dict((k, v) for k, v in (cloud_init or {}).items() if v not in (None, "", [], {}))
        if not options:
            return None
        if self.seeds is None:
            raise ValidationError("cloud-init options need the seed maker (SeedMaker)")
        network = None
        ipv4 = options.get("ipv4")
        if ipv4:
            if not isinstance(ipv4, dict) or not ipv4.get("address") or not ipv4.get("network"):
                raise ValidationError("ipv4 must give address and network (and may give gateway, nameservers)",
                                      field="ipv4", value=ipv4)
            network = network_config(mac, ipv4["address"], ipv4["network"], ipv4.get("gateway"),
                                     ipv4.get("nameservers") or ())
        return SeedDocuments(name, hostname=options.get("hostname"), ssh_authorized_keys=options.get("ssh_authorized_keys"),
                             user_data=options.get("user_data"), network=network)

    def apply(self, steps, pool, dom, spec, xml, pool_name, stop_timeout, seed=(None, None, None)):
        """Run ``steps``; when a new VM fails half-way, roll back what this run made and re-raise."""
        virt = self.virt
        path, documents, instance_xml = seed
        try:
            for step in steps:
                if step == vmplan.CREATE_DISK:
                    virt.create_volume(pool, vmplan.volume_xml(vmplan.volume_name(spec.name), spec.disk_gb, spec.image))
                elif step == vmplan.WRITE_SEED:
                    self.seeds.write(path, documents)
                    virt.refresh_pool(pool)
                    if dom is not None:
                        virt.set_instance_metadata(dom, instance_xml)
                elif step == vmplan.DEFINE:
                    dom = virt.define_domain(xml)
                elif step in (vmplan.AUTOSTART, vmplan.NOAUTOSTART):
                    virt.set_autostart(dom, step == vmplan.AUTOSTART)
                elif step == vmplan.START:
                    virt.start_domain(dom)
                elif step == vmplan.STOP:
                    virt.stop_domain(dom, stop_timeout)
        except KvmfleetError as err:
            if vmplan.CREATE_DISK in steps:
                self.roll_back(spec.name, pool_name, err, path)
            raise
        return dom

    def roll_back(self, name, pool_name, err, seed=None):
        """A new VM failed half-way: remove what this run made, so nothing is left behind.

        A fresh connection, and lookups by name: the failed call may have timed out (which
        leaves the first connection unusable) and still have completed inside libvirt.
        """
        undone = []
        try:
            with self.reconnect() as virt:
                dom = virt.find_domain(name)
                if dom is not None and domain_facts(virt.domain_xml(dom, inactive=True))["managed"]:
                    if virt.domain_state(dom) != "shutoff":
                        virt.stop_domain(dom)
                    virt.undefine_domain(dom, keep_nvram=False)
                    undone.append("definition")
                pool = virt.lookup_pool(pool_name)
                volume = virt.lookup_volume(pool, vmplan.volume_name(name)) if pool is not None else None
                if volume is not None:
                    virt.delete_volume(volume)
                    undone.append("disk")
            if seed is not None and self.seeds.remove(seed):
                undone.append("cloud-init seed")
        except (KvmfleetError, OSError) as cleanup_err:
            err.details["cleanup_error"] = str(cleanup_err)
        err.msg = "%s (rolled back: %s)" % (err.msg, "removed the %s it made" % " and ".join(undone)
                                            if undone else "nothing had been made")
        err.details["rolled_back"] = undone

    def describe(self, dom, spec, desired, disk_path, steps, predicted_state, predicted_autostart):
        """The result's ``vm``: as libvirt has it after a real run, as predicted in check mode or for a new VM."""
        virt = self.virt
        vm = dict(name=spec.name, host=virt.hostname(), vcpus=spec.vcpus, vcpus_max=spec.vcpus_max,
                  memory_mb=spec.memory_mb, memory_max_mb=spec.memory_max_mb, disk=disk_path,
                  disk_gb=spec.disk_gb, image=spec.image, mac=desired.interfaces[0].mac, group=spec.group,
                  console=desired.serial_path, seed=seed_of(desired))
        if dom is not None and not (self.check_mode and steps):
            vm.update(uuid=virt.domain_uuid(dom), state=virt.domain_state(dom), autostart=virt.autostart(dom))
        else:
            vm.update(uuid=None, state=predicted_state, autostart=predicted_autostart)
        return vm

    def volume_gb(self, volume):
        return int(math.ceil(self.virt.volume_capacity(volume) / float(_GIB)))

    # ---- power only (a VM that exists, no sizes given)

    def power(self, name, state, tenant=None, autostart=None, stop_timeout=60.0):
        """Start (``running``) or stop (``stopped``) an existing VM, changing nothing else.

        A VM that is not there, or that ``tenant`` does not own, is refused with the same words,
        which say how to create it instead.
        """
        virt = self.virt
        dom = find_visible_domain(virt, name, tenant)
        if dom is None:
            raise DomainNotFound("VM %s does not exist; to create it give vcpus, memory_mb and disk_gb" % name,
                                 name=name)
        xml = virt.domain_xml(dom, inactive=True)
        if not domain_facts(xml)["managed"]:
            raise NotManaged("the domain %s on this host was not made by kvmfleet; it is left untouched" % name,
                             name=name)
        current = dict(managed=True, state=virt.domain_state(dom), autostart=virt.autostart(dom))
        steps = vmplan.plan_vm(state, current, True, autostart)
        if steps and not self.check_mode:
            for step in steps:
                if step in (vmplan.AUTOSTART, vmplan.NOAUTOSTART):
                    virt.set_autostart(dom, step == vmplan.AUTOSTART)
                elif step == vmplan.START:
                    virt.start_domain(dom)
                elif step == vmplan.STOP:
                    virt.stop_domain(dom, stop_timeout)
        done = not steps or not self.check_mode
        vm = dict(name=name, host=virt.hostname(), uuid=virt.domain_uuid(dom),
                  state=virt.domain_state(dom) if done else vmplan.predicted_state(state, current, steps),
                  autostart=virt.autostart(dom) if done else vmplan.predicted_autostart(current, autostart))
        result = dict(changed=bool(steps), steps=steps, vm=vm)
        if self.diff:     # a power change leaves the definition as it is
            result["diff"] = dict(before=pretty(xml), after=pretty(xml), before_header=name, after_header=name)
        return result

    # ---- absent

    def remove(self, name, tenant=None):
        """Stop the VM, remove its definition and the disk kvmfleet made for it (never a base image).

        With ``tenant``, another tenant's (or the operator's) VM is left alone exactly as a VM that
        does not exist: nothing changes.
        """
        virt = self.virt
        dom = find_visible_domain(virt, name, tenant)
        if dom is None:
            return dict(changed=False, steps=[], vm=dict(name=name, host=virt.hostname(), state="absent"))
        before_xml = virt.domain_xml(dom, inactive=True)
        facts = domain_facts(before_xml)
        if not facts["managed"]:
            raise NotManaged("a domain named %s exists on this host and was not made by kvmfleet; "
                             "it is left untouched" % name, name=name)
        disk_name = vmplan.volume_name(name)
        ours = [d["path"] for d in facts["disks"] if d["path"] and d["path"].endswith("/" + disk_name)]
        seed = seed_of(parse_domain(before_xml))
        current = dict(managed=True, state=virt.domain_state(dom), autostart=virt.autostart(dom))
        steps = vmplan.plan_vm("absent", current, bool(ours),
                               seed_steps=[vmplan.DELETE_SEED] if seed and os.path.exists(seed) else [])
        if not self.check_mode:
            volume = None
            if ours:
                pool = virt.pool_for_path(ours[0].rsplit("/", 1)[0])
                volume = virt.lookup_volume(pool, disk_name) if pool is not None else None
            for step in steps:
                if step == vmplan.STOP:
                    virt.stop_domain(dom, 0)
                elif step == vmplan.UNDEFINE:
                    virt.undefine_domain(dom, keep_nvram=False)
                elif step == vmplan.DELETE_DISK and volume is not None:
                    virt.delete_volume(volume)
                elif step == vmplan.DELETE_SEED:
                    SeedMaker.remove(seed)
        result = dict(changed=True, steps=steps,
                      vm=dict(name=name, host=virt.hostname(), state="absent", disk=ours[0] if ours else None,
                              seed=seed))
        if self.diff:
            result["diff"] = dict(before=pretty(before_xml), after="")
        return result
