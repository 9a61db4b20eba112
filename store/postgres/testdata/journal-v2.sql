-- A PostgreSQL journal as written by coinop before migration 0004
-- (made by store/sqlite/testdata/v2gen from journal-v2.db).

CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL);

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

INSERT INTO schema_migrations VALUES ('0001_payments.sql', '2026-11-30T11:00:00Z');

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

INSERT INTO schema_migrations VALUES ('0002_payment_mode_payload_idempotency_served.sql', '2026-11-30T11:00:00Z');

-- The signed settlement transaction, as broadcast (0x-prefixed hex of its
-- RLP encoding; '' until one is signed). It is journaled before the first
-- broadcast so that a transaction whose broadcast failed, or whose fate a
-- crash hid, can be rebroadcast byte for byte instead of signed again.

ALTER TABLE payments ADD COLUMN raw_tx text NOT NULL DEFAULT '';

INSERT INTO schema_migrations VALUES ('0003_payment_raw_tx.sql', '2026-11-30T11:00:00Z');

INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-01', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a1', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000001', 1001, 'GET https://api.example/items/1', 'verified', '', '', '2026-11-30T12:00:00.006Z', '2026-11-30T12:00:00.006Z', 'sync', '{"x402Version":1,"n":1}', NULL, NULL, '');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-02', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a2', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000002', 2001, 'GET https://api.example/items/2', 'verified', '', '', '2026-11-30T12:00:00.0075Z', '2026-11-30T12:00:00.009Z', 'async', '{"x402Version":1,"n":2}', 'idem-2', '2026-11-30T12:00:00.009Z', '');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-03', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a0', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000003', 3001, 'GET https://api.example/items/3', 'settling', '', '', '2026-11-30T12:00:00.0105Z', '2026-11-30T12:00:00.012Z', 'sync', '{"x402Version":1,"n":3}', NULL, NULL, '');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-04', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a1', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000004', 4001, 'GET https://api.example/items/4', 'settling', '0x000000000000000000000000000000000000000000000000000000000000f004', '', '2026-11-30T12:00:00.0135Z', '2026-11-30T12:00:00.018Z', 'async', '{"x402Version":1,"n":4}', 'idem-4', '2026-11-30T12:00:00.015Z', '0x02f8000000000000000000000000000000000000000000000000000000000004');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-05', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a2', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000005', 5001, 'GET https://api.example/items/5', 'settled', '0x000000000000000000000000000000000000000000000000000000000000f005', 'settled', '2026-11-30T12:00:00.0195Z', '2026-11-30T12:00:00.0255Z', 'sync', '{"x402Version":1,"n":5}', 'idem-5', '2026-11-30T12:00:00.0255Z', '0x02f8000000000000000000000000000000000000000000000000000000000005');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-06', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a0', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000006', 6001, 'GET https://api.example/items/6', 'failed', '0x000000000000000000000000000000000000000000000000000000000000f006', 'transaction_reverted', '2026-11-30T12:00:00.027Z', '2026-11-30T12:00:00.0315Z', 'sync', '{"x402Version":1,"n":6}', NULL, NULL, '0x02f8000000000000000000000000000000000000000000000000000000000006');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-07', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a1', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000007', 115792089237316195423570985008687907853269984665640564039457584007913129639935, 'GET https://api.example/items/7', 'failed', '', 'insufficient_funds', '2026-11-30T12:00:00.033Z', '2026-11-30T12:00:00.0345Z', 'sync', '{"x402Version":1,"n":7}', NULL, NULL, '');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-08', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a2', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000008', 8001, 'GET https://api.example/items/8', 'released', '', 'upstream_failed', '2026-11-30T12:00:00.036Z', '2026-11-30T12:00:00.0375Z', 'sync', '{"x402Version":1,"n":8}', 'idem-8', NULL, '');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-09', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a0', '0x00000000000000000000000000000000000000b0', '0x0000000000000000000000000000000000000000000000000000000000000009', 9001, 'GET https://api.example/items/9', 'settled', '0x000000000000000000000000000000000000000000000000000000000000f009', 'settled', '2026-11-30T12:00:00.039Z', '2026-11-30T12:00:00.0465Z', 'sync', '{"x402Version":1,"n":9,"retry":true}', 'idem-9', NULL, '0x02f8000000000000000000000000000000000000000000000000000000000009');
INSERT INTO payments (id, rail, network, asset, payer, pay_to, nonce, amount, resource, state, tx, reason, created_at, updated_at, mode, payload, idempotency_key, served_at, raw_tx)
	VALUES ('pay-10', 'x402-exact-evm', 'eip155:84532', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', '0x00000000000000000000000000000000000000a1', '0x00000000000000000000000000000000000000b0', '0x000000000000000000000000000000000000000000000000000000000000000a', 10001, 'GET https://api.example/items/10', 'settled', '0x000000000000000000000000000000000000000000000000000000000000f00a', 'recovered', '2026-11-30T12:00:00.048Z', '2026-11-30T12:00:00.0555Z', 'async', '{"x402Version":1,"n":10}', NULL, '2026-11-30T12:00:00.0495Z', '0x02f800000000000000000000000000000000000000000000000000000000000a');

INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-01', '', 'verified', '', '', '2026-11-30T12:00:00.006Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-02', '', 'verified', '', '', '2026-11-30T12:00:00.0075Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-02', 'verified', 'verified', '', 'served', '2026-11-30T12:00:00.009Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-03', '', 'verified', '', '', '2026-11-30T12:00:00.0105Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-03', 'verified', 'settling', '', '', '2026-11-30T12:00:00.012Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-04', '', 'verified', '', '', '2026-11-30T12:00:00.0135Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-04', 'verified', 'verified', '', 'served', '2026-11-30T12:00:00.015Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-04', 'verified', 'settling', '', '', '2026-11-30T12:00:00.0165Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-04', 'settling', 'settling', '0x000000000000000000000000000000000000000000000000000000000000f004', '', '2026-11-30T12:00:00.018Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-05', '', 'verified', '', '', '2026-11-30T12:00:00.0195Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-05', 'verified', 'settling', '', '', '2026-11-30T12:00:00.021Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-05', 'settling', 'settling', '0x000000000000000000000000000000000000000000000000000000000000f005', '', '2026-11-30T12:00:00.0225Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-05', 'settling', 'settled', '0x000000000000000000000000000000000000000000000000000000000000f005', 'settled', '2026-11-30T12:00:00.024Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-05', 'settled', 'settled', '', 'served', '2026-11-30T12:00:00.0255Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-06', '', 'verified', '', '', '2026-11-30T12:00:00.027Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-06', 'verified', 'settling', '', '', '2026-11-30T12:00:00.0285Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-06', 'settling', 'settling', '0x000000000000000000000000000000000000000000000000000000000000f006', '', '2026-11-30T12:00:00.03Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-06', 'settling', 'failed', '', 'transaction_reverted', '2026-11-30T12:00:00.0315Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-07', '', 'verified', '', '', '2026-11-30T12:00:00.033Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-07', 'verified', 'failed', '', 'insufficient_funds', '2026-11-30T12:00:00.0345Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-08', '', 'verified', '', '', '2026-11-30T12:00:00.036Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-08', 'verified', 'released', '', 'upstream_failed', '2026-11-30T12:00:00.0375Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-09', '', 'verified', '', '', '2026-11-30T12:00:00.039Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-09', 'verified', 'released', '', 'upstream_failed', '2026-11-30T12:00:00.0405Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-09', 'released', 'verified', '', '', '2026-11-30T12:00:00.042Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-09', 'verified', 'settling', '', '', '2026-11-30T12:00:00.0435Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-09', 'settling', 'settling', '0x000000000000000000000000000000000000000000000000000000000000f009', '', '2026-11-30T12:00:00.045Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-09', 'settling', 'settled', '', 'settled', '2026-11-30T12:00:00.0465Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-10', '', 'verified', '', '', '2026-11-30T12:00:00.048Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-10', 'verified', 'verified', '', 'served', '2026-11-30T12:00:00.0495Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-10', 'verified', 'settling', '', '', '2026-11-30T12:00:00.051Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-10', 'settling', 'settling', '', 'unreconcilable_no_rpc', '2026-11-30T12:00:00.0525Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-10', 'settling', 'settling', '0x000000000000000000000000000000000000000000000000000000000000f00a', '', '2026-11-30T12:00:00.054Z');
INSERT INTO payment_events (payment_id, from_state, to_state, tx, reason, at) VALUES ('pay-10', 'settling', 'settled', '', 'recovered', '2026-11-30T12:00:00.0555Z');
