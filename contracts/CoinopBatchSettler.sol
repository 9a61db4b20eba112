// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The EIP-3009 function the settler calls (USDC's FiatToken v2, CoinopUSD).
interface IERC3009 {
    function transferWithAuthorization(
        address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce,
        uint8 v, bytes32 r, bytes32 s
    ) external;
}

/// @title CoinopBatchSettler: many EIP-3009 authorizations in one transaction.
/// @notice Stateless: no owner, no storage, no funds, nothing to configure.
/// Anyone may call it, and that is safe: transferWithAuthorization moves
/// value from the signer to the recipient the signer named, and only once per
/// nonce, whoever submits it. The caller chooses neither the payer, the
/// recipient nor the amount, so a batch cannot redirect or multiply money;
/// the settler never holds tokens and the token sees it only as the submitter.
contract CoinopBatchSettler {
    /// One signed TransferWithAuthorization, as the token takes it.
    struct Item {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    event ItemSettled(uint256 index, address from, bytes32 nonce);
    /// reason is the token's revert data (an Error(string) for FiatToken's
    /// require messages).
    event ItemFailed(uint256 index, address from, bytes32 nonce, bytes reason);

    /// A call ran out of the gas it was given, so the token did not answer
    /// for that item. Reported as a failure it would blame the payer for the
    /// submitter's gas limit, so the whole batch reverts instead.
    error OutOfGas(uint256 index);

    /// @notice Submits each item to token.transferWithAuthorization. An item
    /// the token rejects (expired, already used, bad signature, short balance)
    /// emits ItemFailed and leaves the others alone; ok[i] tells whether item i
    /// moved money. The transaction reverts only if token has no code or the
    /// gas runs out.
    function settle(address token, Item[] calldata items) external returns (bool[] memory ok) {
        ok = new bool[](items.length);
        for (uint256 i = 0; i < items.length; i++) {
            Item calldata it = items[i];
            uint256 gasBefore = gasleft();
            try IERC3009(token).transferWithAuthorization(
                it.from, it.to, it.value, it.validAfter, it.validBefore, it.nonce, it.v, it.r, it.s
            ) {
                ok[i] = true;
                emit ItemSettled(i, it.from, it.nonce);
            } catch (bytes memory reason) {
                // A call keeps 1/64 of the gas back (EIP-150); a callee that
                // spent all it was forwarded leaves the caller less than that.
                // A token rejecting an item reverts long before.
                if (gasleft() < gasBefore / 64) revert OutOfGas(i);
                emit ItemFailed(i, it.from, it.nonce, reason);
            }
        }
    }
}
