"""Use cases. One function per use case, keyword-only arguments; each owns its transaction."""
