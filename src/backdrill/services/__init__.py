"""Services: the logic behind each command. They never print; they return results."""
