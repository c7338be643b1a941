"""Make ``ansible_collections.kvmfleet.iaas`` importable, from a checkout or an installed collection.

From a checkout, tools/devpath.py links the checkout as .build/collections/ansible_collections/
kvmfleet/iaas (as bench/*.py do). From an installed collection (``ansible-galaxy collection
install``: the dashboard is DIR/ansible_collections/kvmfleet/iaas/dashboard, and tools/ is not
shipped), DIR itself goes on sys.path and is the collections path the playbooks run with.
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALLED = REPO.parent.name == "kvmfleet" and REPO.parents[1].name == "ansible_collections"

if INSTALLED:
    COLLECTIONS = REPO.parents[2]
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
else:
    if str(REPO / "tools") not in sys.path:
        sys.path.insert(0, str(REPO / "tools"))
    from devpath import COLLECTIONS, ensure_collection_path  # noqa: E402

    ensure_collection_path()

__all__ = ["REPO", "COLLECTIONS", "INSTALLED"]
