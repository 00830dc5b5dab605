"""The configuration: its model, strict YAML, security settings, TLS, secret ages."""
