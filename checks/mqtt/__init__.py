"""MQTT brokers (bedside monitors, nurse call, building systems): anonymous access and transport encryption."""
