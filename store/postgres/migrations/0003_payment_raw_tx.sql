-- The signed settlement transaction, as broadcast (0x-prefixed hex of its
-- RLP encoding; '' until one is signed). It is journaled before the first
-- broadcast so that a transaction whose broadcast failed, or whose fate a
-- crash hid, can be rebroadcast byte for byte instead of signed again.

ALTER TABLE payments ADD COLUMN raw_tx text NOT NULL DEFAULT '';
