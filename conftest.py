"""pytest root: puts the checkout on sys.path as ansible_collections.kvmfleet.iaas."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
from devpath import ensure_collection_path  # noqa: E402

ensure_collection_path()
