"""Shared ground floor: the contract, settings, database, bus and embedded infrastructure."""
