"""Start the dashboard from anywhere: python3 dashboard/serve.py --listen 127.0.0.1:8080 ..."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dashboard.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
