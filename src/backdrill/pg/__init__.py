"""PostgreSQL: locating its programs, running them, connecting, throwaway clusters."""
