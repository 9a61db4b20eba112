-- What each payer owes asynchronously on a network and asset (the sum of its
-- payments settling in mode async, see OweWithin), kept as a running total:
-- OweWithin adds a payment's amount when it owes it async, and the
-- transition that takes such a payment out of settling subtracts it. The
-- cap is then one row's read instead of a sum over every payment still
-- owed. Amounts are decimal text, exact at any size. The rows are built
-- from the payments by the migration's Go step (rebuildOwed).
CREATE TABLE async_owed (
	network TEXT NOT NULL,
	asset   TEXT NOT NULL,
	payer   TEXT NOT NULL,
	amount  TEXT NOT NULL,
	PRIMARY KEY (network, asset, payer)
) STRICT, WITHOUT ROWID;
