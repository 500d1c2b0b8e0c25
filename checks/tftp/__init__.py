"""TFTP servers holding device configuration files (and their passwords)."""
