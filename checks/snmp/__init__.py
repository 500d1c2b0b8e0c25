"""snmp checks."""
