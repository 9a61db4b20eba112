-- Journal v3: one protocol-neutral row per payment, with one unique key.
--
-- The primary key id is the replay guard: a rail of single-use credentials
-- derives a payment's ID from its replay key, so a credential presented
-- again has the same ID. The unique constraint on (network, asset, payer,
-- nonce) goes. Renamed: nonce → replay_key ('' for a bearer charge), tx →
-- reference, raw_tx → prepared. New: route, bearer, details (JSON object of
-- the rail's own fields, as text), and the lease (lease_owner, lease_until;
-- '' and NULL for no lease, which is an expired one). Renaming a column
-- fires no row trigger: the events' history and its append-only triggers
-- are kept as they are.

ALTER TABLE payments DROP CONSTRAINT payments_replay_key;
ALTER TABLE payments RENAME COLUMN nonce TO replay_key;
ALTER TABLE payments RENAME COLUMN tx TO reference;
ALTER TABLE payments RENAME COLUMN raw_tx TO prepared;
ALTER TABLE payments
	ALTER COLUMN replay_key SET DEFAULT '',
	ADD COLUMN route text NOT NULL DEFAULT '',
	ADD COLUMN bearer boolean NOT NULL DEFAULT false,
	ADD COLUMN details text NOT NULL DEFAULT '{}' CHECK (details::jsonb IS NOT NULL AND jsonb_typeof(details::jsonb) = 'object'),
	ADD COLUMN lease_owner text NOT NULL DEFAULT '',
	ADD COLUMN lease_until timestamptz,
	-- A single-use credential has a replay key; a bearer charge has none.
	ADD CONSTRAINT payments_replay_key_or_bearer CHECK (bearer = (replay_key = ''));

ALTER TABLE payment_events RENAME COLUMN tx TO reference;
