"""Shared kernel of the Call Recording Portal: configuration, extensions, models, services and security.

Nothing in this package imports the `portal` or `admin` blueprints except `core.factory`, the one
composition root that registers them (tests/test_architecture.py enforces this).
"""
