-- What a payment needs beyond its replay key and state: the settlement mode
-- it was accepted under, the credential as presented (so that a settlement
-- can be completed after a crash), the client's idempotency key and when
-- the paid response was served (NULL until then).
-- "No idempotency key" is NULL, never ''.

ALTER TABLE payments
	ADD COLUMN mode text NOT NULL DEFAULT 'sync' CHECK (mode IN ('sync', 'async')),
	ADD COLUMN payload text NOT NULL DEFAULT '',
	ADD COLUMN idempotency_key text CHECK (idempotency_key <> ''),
	ADD COLUMN served_at timestamptz;

-- One purchase per payer and idempotency key. A released payment charged
-- nothing and gives its key up, so that the purchase can be retried with
-- another payment; it keeps the key in its row, as a record of the attempt.
-- Reserve relies on this index being an arbiter of its ON CONFLICT DO NOTHING.
CREATE UNIQUE INDEX payments_idempotency_key ON payments (payer, idempotency_key)
	WHERE idempotency_key IS NOT NULL AND state <> 'released';
