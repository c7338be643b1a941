#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a bench's workload on today's code and on a baseline git revision, side by side in one run.

A refactoring must keep decisions and speed: ``python bench/placement.py --against REV`` (and
the patrol bench likewise) exports REV's tree with ``git archive``, then runs the bench's probe
in child processes that import the collection from either tree (tools/devpath.py,
``KVMFLEET_COLLECTION_TREE``), alternating which goes first each round so that both see the
same machine. Each probe prints one JSON object as its last line of output.
"""

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export_revision(rev, dest=None):
    """REV's tree (``git archive``) in a fresh directory; returns its path."""
    dest = Path(dest or tempfile.mkdtemp(prefix="kvmfleet-rev-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as tmp:
        tmp.write(archive)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp) as tar:
            tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
    return dest


def probe(script, args, tree=None):
    """Run ``script --probe ARGS`` importing the collection from ``tree`` (None: the checkout)."""
    env = dict(os.environ)
    env.pop("KVMFLEET_COLLECTION_TREE", None)
    if tree is not None:
        env["KVMFLEET_COLLECTION_TREE"] = str(tree)
    out = subprocess.run([sys.executable, str(script), "--probe"] + list(args), env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def side_by_side(script, args, rev, rounds):
    """[(current, baseline)] probe results of ``rounds`` rounds, the order alternating per round.

    The exported tree is removed afterwards, also when a probe fails."""
    with tempfile.TemporaryDirectory(prefix="kvmfleet-rev-") as tmp:
        tree = export_revision(rev, tmp)
        results = []
        for number in range(rounds):
            if number % 2 == 0:
                current = probe(script, args)
                baseline = probe(script, args, tree)
            else:
                baseline = probe(script, args, tree)
                current = probe(script, args)
            results.append((current, baseline))
        return results
