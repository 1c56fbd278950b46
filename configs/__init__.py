"""The presets as package data (crl.configs), so `--config quickstart` resolves from any directory."""
