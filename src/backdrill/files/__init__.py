"""Filestore snapshots: content-addressed, incremental, each restorable on its own."""
