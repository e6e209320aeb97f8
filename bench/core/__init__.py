"""The core every layer imports: config, data, models, records, device helpers, the generic registry.

Nothing here imports `regularizers`, `attacks`, `leaderboard` or the rest of `bench` (an import-linter
contract in pyproject.toml, run by the tests).
"""
