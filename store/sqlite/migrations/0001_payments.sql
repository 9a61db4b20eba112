-- The payments journal. Times are unix nanoseconds (UTC); amounts are
-- non-negative decimal integers in the asset's atomic units.

CREATE TABLE payments (
	id         TEXT PRIMARY KEY,
	rail       TEXT NOT NULL,
	network    TEXT NOT NULL,
	asset      TEXT NOT NULL,
	payer      TEXT NOT NULL,
	pay_to     TEXT NOT NULL,
	nonce      TEXT NOT NULL,
	amount     TEXT NOT NULL CHECK (amount <> '' AND amount NOT GLOB '*[^0-9]*'),
	resource   TEXT NOT NULL,
	state      TEXT NOT NULL CHECK (state IN ('verified', 'settling', 'settled', 'failed', 'released')),
	tx         TEXT NOT NULL DEFAULT '',
	reason     TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- The replay guard: one journal row per presented payment, whatever its ID.
CREATE UNIQUE INDEX payments_replay_key ON payments (network, asset, payer, nonce);

CREATE INDEX payments_state_created ON payments (state, created_at);
CREATE INDEX payments_created ON payments (created_at);

-- Every transition, written in the transaction that makes it.
CREATE TABLE payment_events (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	payment_id TEXT NOT NULL REFERENCES payments (id),
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	tx         TEXT NOT NULL DEFAULT '',
	reason     TEXT NOT NULL DEFAULT '',
	at         INTEGER NOT NULL
) STRICT;

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
