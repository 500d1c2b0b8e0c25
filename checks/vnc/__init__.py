"""VNC (RFB) checks."""
