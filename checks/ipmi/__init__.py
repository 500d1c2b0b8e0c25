"""IPMI (BMC) checks."""
