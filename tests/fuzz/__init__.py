"""Fuzz tests: generated hostile and schema-mutated frames (tests/fuzz/frames.py) against rpc and the station."""
