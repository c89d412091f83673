"""The syscall layer: small modules named for what they do, with no policy."""
