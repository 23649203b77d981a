"""The web dashboard: ``aioqueue dashboard``, or ``create_app()`` mounted in your own ASGI app.

Needs the ``dashboard`` extra (``pip install "aioqueue[dashboard]"``).
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
