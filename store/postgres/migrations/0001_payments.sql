-- The payments journal. Times are timestamptz (microsecond precision);
-- amounts are non-negative integers in the asset's atomic units.

CREATE TABLE payments (
	-- COLLATE "C": IDs order by bytes, whatever the database's locale.
	id         text COLLATE "C" PRIMARY KEY,
	rail       text NOT NULL,
	network    text NOT NULL,
	asset      text NOT NULL,
	payer      text NOT NULL,
	pay_to     text NOT NULL,
	nonce      text NOT NULL,
	amount     numeric NOT NULL CHECK (amount >= 0 AND scale(amount) = 0),
	resource   text NOT NULL,
	state      text NOT NULL CHECK (state IN ('verified', 'settling', 'settled', 'failed', 'released')),
	tx         text NOT NULL DEFAULT '',
	reason     text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,

	-- The replay guard: one journal row per presented payment, whatever its ID.
	CONSTRAINT payments_replay_key UNIQUE (network, asset, payer, nonce)
);

CREATE INDEX payments_state_created ON payments (state, created_at, id);
CREATE INDEX payments_created ON payments (created_at, id);

-- Every transition, written in the transaction that makes it.
CREATE TABLE payment_events (
	seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	payment_id text COLLATE "C" NOT NULL REFERENCES payments (id),
	from_state text NOT NULL,
	to_state   text NOT NULL,
	tx         text NOT NULL DEFAULT '',
	reason     text NOT NULL DEFAULT '',
	at         timestamptz NOT NULL
);

CREATE INDEX payment_events_payment ON payment_events (payment_id, seq);

-- History is evidence: refuse to rewrite it, even by hand. TRUNCATE skips
-- row triggers, so it gets its own. (Dropping the table is not prevented.)
CREATE FUNCTION payment_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'payment_events is append-only';
END
$$;

CREATE TRIGGER payment_events_no_update_delete BEFORE UPDATE OR DELETE ON payment_events
	FOR EACH ROW EXECUTE FUNCTION payment_events_append_only();

CREATE TRIGGER payment_events_no_truncate BEFORE TRUNCATE ON payment_events
	FOR EACH STATEMENT EXECUTE FUNCTION payment_events_append_only();
