"""The `bacalao` command line."""
