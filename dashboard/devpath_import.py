"""Make ``ansible_collections.kvmfleet.iaas`` importable (tools/devpath.py), as bench/*.py do."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))
from devpath import COLLECTIONS, ensure_collection_path  # noqa: E402

ensure_collection_path()

__all__ = ["REPO", "COLLECTIONS"]
