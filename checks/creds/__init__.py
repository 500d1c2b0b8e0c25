"""creds checks."""
