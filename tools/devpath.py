"""Make the checkout importable as ``ansible_collections.kvmfleet.iaas``.

Tests, benchmarks and the dashboard import the collection's pure module_utils by their
FQCN path.  A symlink ``.build/collections/ansible_collections/kvmfleet/iaas`` pointing at
the checkout gives them that path without installing anything.

``KVMFLEET_COLLECTION_TREE`` names another tree (an exported git revision, see
bench/revisions.py) to import instead of the checkout: benches run a baseline revision's code
with today's workload that way.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".build" / "collections"


def ensure_collection_path(tree=None):
    tree = Path(tree or os.environ.get("KVMFLEET_COLLECTION_TREE") or ROOT).resolve()
    collections = tree / ".build" / "collections"
    link = collections / "ansible_collections" / "kvmfleet" / "iaas"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name("iaas.tmp%d" % os.getpid())
        os.symlink(os.path.relpath(tree, link.parent), tmp)
        os.replace(tmp, link)
    if str(collections) not in sys.path:
        sys.path.insert(0, str(collections))
    return collections
