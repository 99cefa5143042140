"""The core layer: what every step and science package stands on, importing nothing above it.

errors (UserError: one line, exit 2), registry (register_* / create_*), storage (atomic writes, plain-data
loading), config_schema (a config file's fields), setting (what identifies a model), results (the one
results schema), provenance (what produced a file), training (the one training loop), reference_splits
(the half-in design of reference models), version (the code's version, `--version`).
"""
