"""Authenticated host checks over one shared SSH session (scanner.sdk.ssh_session)."""
