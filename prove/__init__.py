"""Reliability proofs: load, faults, fuzzing (see README, Reliability)."""
