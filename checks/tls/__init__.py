"""TLS checks: handshake-level enumeration of protocol versions and cipher suites, certificate, ShangMi."""
