"""The champion served to applications (today: `ratchet predict`)."""
