"""Process plumbing: errors and exit codes, logs, redaction, progress, time, retries."""
