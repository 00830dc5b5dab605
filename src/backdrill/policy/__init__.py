"""Pure decisions: retention, RPO/RTO objectives, schedules, the SSOT, standards."""
