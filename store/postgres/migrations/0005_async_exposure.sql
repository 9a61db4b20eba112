-- The async exposure cap (OweWithin) sums, per payer and asset, the amounts
-- of async payments still owed: settling in mode async. This index holds
-- exactly those rows, so the sum reads them and nothing else.
CREATE INDEX payments_async_owed ON payments (network, asset, payer)
	WHERE state = 'settling' AND mode = 'async';
