"""The independent services; each meets the others only on NATS subjects."""
