"""What people read: back-test reports, their charts, and `ratchet status`."""
