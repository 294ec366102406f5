"""The alerts API: rules (managed like in the admin), events, and the outbox of deliveries."""
