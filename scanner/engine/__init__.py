"""The scan engine: settings, targets and scope, inventory and asset classes, discovery, plug-in loading,
planning, the runner and its executors, the scan phases."""
