"""Strawberry types, inputs, enums, extensions and the Schema object: the public
contract (API.md), and nothing else."""
