"""Authenticated host checks over one shared SSH session (scanner.ssh_session)."""
