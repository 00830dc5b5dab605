"""Generated Odoo-shaped sample data, for the demo, the tests and the benchmarks."""
