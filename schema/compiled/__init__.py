"""Compiled hot operations: a validated query over our list and history fields is
planned once per document — one SQL statement per root field, shaped by the selection
set — and its rows rendered straight into the response, with the same ids, cursors,
scalars and user scoping as normal execution. Anything the planner does not cover, and
any request that would answer an error, runs through normal execution instead."""
