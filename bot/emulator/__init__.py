"""A local Odyssey-compatible service: the embedded default backend for running and testing offline."""
