"""kvmfleet web dashboard: an admin page and a customer page over the collection's playbooks.

See docs/dashboard.md. Stdlib http.server + jinja2; run ``python3 -m dashboard`` or
``python3 dashboard/serve.py``.
"""
