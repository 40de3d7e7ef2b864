"""Alert mails and the outbox that delivers them."""
