"""The command-line layer: parse options, call a service, render the result."""
