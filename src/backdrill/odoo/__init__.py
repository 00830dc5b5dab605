"""Odoo: facts recorded at backup time, neutralization, the drill's Odoo checks."""
