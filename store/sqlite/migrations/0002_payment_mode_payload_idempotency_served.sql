-- What a payment needs beyond its replay key and state: the settlement mode
-- it was accepted under, the credential as presented (so that a settlement
-- can be completed after a crash), the client's idempotency key and when
-- the paid response was served (unix nanoseconds; NULL until then).
-- "No idempotency key" is NULL, never ''.

ALTER TABLE payments ADD COLUMN mode TEXT NOT NULL DEFAULT 'sync' CHECK (mode IN ('sync', 'async'));
ALTER TABLE payments ADD COLUMN payload TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN idempotency_key TEXT CHECK (idempotency_key <> '');
ALTER TABLE payments ADD COLUMN served_at INTEGER;

-- One purchase per payer and idempotency key. A released payment charged
-- nothing and gives its key up, so that the purchase can be retried with
-- another payment; it keeps the key in its row, as a record of the attempt.
CREATE UNIQUE INDEX payments_idempotency_key ON payments (payer, idempotency_key)
	WHERE idempotency_key IS NOT NULL AND state <> 'released';
