-- Journal v3: one protocol-neutral row per payment, with one unique key.
--
-- The primary key id is the replay guard: a rail of single-use credentials
-- derives a payment's ID from its replay key, so a credential presented
-- again has the same ID. The unique index on (network, asset, payer, nonce)
-- goes. Renamed: nonce → replay_key ('' for a bearer charge), tx →
-- reference, raw_tx → prepared. New: route, bearer, details (JSON object of
-- the rail's own fields), and the lease (lease_owner, lease_until: unix
-- nanoseconds; '' and 0 for no lease, which is an expired one).
--
-- SQLite cannot rename away a unique index's columns in place or add CHECKs
-- to a table, so both tables are rebuilt: create, copy, drop, rename,
-- recreate indexes and triggers. Event rows keep their seq, so history is
-- carried across byte for byte. It all runs in the migration's transaction.

CREATE TABLE payments_v3 (
	id              TEXT PRIMARY KEY,
	rail            TEXT NOT NULL,
	route           TEXT NOT NULL DEFAULT '',
	network         TEXT NOT NULL,
	asset           TEXT NOT NULL,
	payer           TEXT NOT NULL,
	pay_to          TEXT NOT NULL,
	replay_key      TEXT NOT NULL DEFAULT '',
	bearer          INTEGER NOT NULL DEFAULT 0 CHECK (bearer IN (0, 1)),
	amount          TEXT NOT NULL CHECK (amount <> '' AND amount NOT GLOB '*[^0-9]*'),
	resource        TEXT NOT NULL,
	state           TEXT NOT NULL CHECK (state IN ('verified', 'settling', 'settled', 'failed', 'released')),
	reference       TEXT NOT NULL DEFAULT '',
	prepared        TEXT NOT NULL DEFAULT '',
	details         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
	reason          TEXT NOT NULL DEFAULT '',
	mode            TEXT NOT NULL DEFAULT 'sync' CHECK (mode IN ('sync', 'async')),
	payload         TEXT NOT NULL DEFAULT '',
	idempotency_key TEXT CHECK (idempotency_key <> ''),
	served_at       INTEGER,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	lease_owner     TEXT NOT NULL DEFAULT '',
	lease_until     INTEGER NOT NULL DEFAULT 0,
	-- A single-use credential has a replay key; a bearer charge has none.
	CHECK ((bearer = 1) = (replay_key = ''))
) STRICT;

INSERT INTO payments_v3 (id, rail, network, asset, payer, pay_to, replay_key, amount, resource, state,
		reference, prepared, reason, mode, payload, idempotency_key, served_at, created_at, updated_at)
	SELECT id, rail, network, asset, payer, pay_to, nonce, amount, resource, state,
		tx, raw_tx, reason, mode, payload, idempotency_key, served_at, created_at, updated_at
	FROM payments;

CREATE TABLE payment_events_v3 (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	payment_id TEXT NOT NULL REFERENCES payments_v3 (id),
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	reference  TEXT NOT NULL DEFAULT '',
	reason     TEXT NOT NULL DEFAULT '',
	at         INTEGER NOT NULL
) STRICT;

INSERT INTO payment_events_v3 (seq, payment_id, from_state, to_state, reference, reason, at)
	SELECT seq, payment_id, from_state, to_state, tx, reason, at FROM payment_events ORDER BY seq;

-- The child first: nothing references the old events, and once they are
-- gone nothing references the old payments.
DROP TRIGGER payment_events_no_update;
DROP TRIGGER payment_events_no_delete;
DROP TABLE payment_events;
DROP TABLE payments;
-- Renaming a table rewrites the foreign keys that name it.
ALTER TABLE payments_v3 RENAME TO payments;
ALTER TABLE payment_events_v3 RENAME TO payment_events;

CREATE UNIQUE INDEX payments_idempotency_key ON payments (payer, idempotency_key)
	WHERE idempotency_key IS NOT NULL AND state <> 'released';
CREATE INDEX payments_state_created ON payments (state, created_at, id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payment_events_payment ON payment_events (payment_id, seq);

-- History is evidence: refuse to rewrite it, even by hand.
CREATE TRIGGER payment_events_no_update BEFORE UPDATE ON payment_events
BEGIN
	SELECT RAISE(ABORT, 'payment_events is append-only');
END;

CREATE TRIGGER payment_events_no_delete BEFORE DELETE ON payment_events
BEGIN
	SELECT RAISE(ABORT, 'payment_events is append-only');
END;
