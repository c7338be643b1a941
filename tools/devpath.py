"""Make the checkout importable as ``ansible_collections.kvmfleet.iaas``.

Tests, benchmarks and the dashboard import the collection's pure module_utils by their
FQCN path.  A symlink ``.build/collections/ansible_collections/kvmfleet/iaas`` pointing at
the checkout gives them that path without installing anything.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".build" / "collections"


def ensure_collection_path():
    link = COLLECTIONS / "ansible_collections" / "kvmfleet" / "iaas"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name("iaas.tmp%d" % os.getpid())
        os.symlink(os.path.relpath(ROOT, link.parent), tmp)
        os.replace(tmp, link)
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    return COLLECTIONS
