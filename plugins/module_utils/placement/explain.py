# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a placement tells the user: the decision (``Placement``), the score breakdown of a host,
the one-line explanation, and the message naming every rejected host when none fits."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class Placement:
    """The decision: ``host`` and why. ``candidates`` / ``rejected`` are complete only when
    the placement was made with ``explain=True``; otherwise they hold the chosen host only."""

    __slots__ = ("request", "host", "score", "strategy", "breakdown", "demand", "explanation",
                 "candidates", "rejected", "source")

    def __init__(self, request, host, score, breakdown, demand, explanation, candidates, rejected, source):
        self.request = request
        self.host = host
        self.score = score
        self.strategy = request.strategy
        self.breakdown = breakdown
        self.demand = demand
        self.explanation = explanation
        self.candidates = candidates
        self.rejected = rejected
        self.source = source

    def to_dict(self):
        return {"host": self.host, "strategy": self.strategy, "score": self.score,
                "explanation": self.explanation, "breakdown": self.breakdown,
                "scores": self.candidates, "rejected": self.rejected,
                "moved_from": self.source if self.source not in (None, self.host) else None}

    def __repr__(self):
        return "Placement(%s -> %s, %.6f)" % (self.request.name, self.host, self.score)


def breakdown(host, demand, strategy, score):
    """Score terms, allocated fractions before and after, projected utilization, the demand."""
    before = (host.f_cpu, host.f_mem, host.f_disk)
    after = (host.f_cpu + demand.vcpus / host.cap_cpu, host.f_mem + demand.memory_mb / host.cap_mem,
             host.f_disk + demand.disk_gb / host.cap_disk)
    cpu_load = demand.cpu_projection(host)
    mem_load = demand.memory_projection(host)
    return {
        "score": round(score, 6),
        "terms": {k: round(v, 6) for k, v in strategy.terms(*after).items()},
        "allocated_before": {k: round(v, 4) for k, v in zip(("cpu", "memory", "disk"), before)},
        "allocated_after": {k: round(v, 4) for k, v in zip(("cpu", "memory", "disk"), after)},
        "utilization_after": {"cpu_percent": round(host.cpu_percent + cpu_load, 1),
                              "memory_percent": round(host.memory_percent + mem_load, 1)},
        "demand": demand.as_dict(host),
    }


def explanation(request, strategy, host, breakdown, n_candidates, current):
    after = breakdown["allocated_after"]
    live = breakdown["utilization_after"]
    text = "%s chosen by %s: score %.4f = %s" % (host.name, strategy.name, breakdown["score"],
                                                 strategy.formula(breakdown["terms"]))
    if n_candidates is not None:
        text += " (best of %d fitting host%s)" % (n_candidates, "" if n_candidates == 1 else "s")
    text += ("; allocated after: cpu %.1f%%, memory %.1f%%, disk %.1f%%; projected utilization: "
             "cpu %.1f%%, memory %.1f%%" % (100 * after["cpu"], 100 * after["memory"], 100 * after["disk"],
                                            live["cpu_percent"], live["memory_percent"]))
    if current is not None:
        if host is current:
            demand = breakdown["demand"]
            text += "; resized in place (%+d vCPUs, %+d MiB, %+d GiB)" % (
                demand["vcpus"], demand["memory_mb"], demand["disk_gb"])
        else:
            text += "; moves from %s" % current.name
    return text


def no_fit_message(request, rejected, n_hosts):
    lines = ["no host can take %s (%d vCPUs, %d MiB, %d GiB) among %d host%s:"
             % (request.name, request.vcpus, request.memory_mb, request.disk_gb, n_hosts,
                "" if n_hosts == 1 else "s")]
    for name in sorted(rejected):
        lines.append("  %s: %s" % (name, "; ".join(rejected[name])))
    return "\n".join(lines)
