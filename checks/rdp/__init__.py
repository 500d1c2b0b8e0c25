"""RDP checks."""
