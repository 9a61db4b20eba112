// Pays a coinop 402 from the page, two ways:
//
// - x402 with the browser's wallet: finds the wallet (EIP-6963, else
//   window.ethereum), connects, switches to the offer's chain, checks the
//   balance, has the wallet sign an EIP-3009 TransferWithAuthorization
//   (EIP-712, eth_signTypedData_v4) and repeats the request with the x402 v2
//   PAYMENT-SIGNATURE header;
// - L402 over Lightning: pays the invoice with a WebLN wallet
//   (window.webln), or takes the preimage of a payment made elsewhere,
//   checks it against the invoice's payment hash and repeats the request
//   with `Authorization: L402 <token>:<preimage>`.
//
// Either way it shows the paid response in place. It talks to the wallets
// and to this page's own URL only. Every state the user must act on is said
// in a live status region.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  let terms;
  try {
    terms = JSON.parse($('coinop-pay').textContent);
  } catch (e) {
    return; // no terms: the page without its buttons, as with JavaScript off
  }
  const required = terms.paymentRequired || {};
  const accepts = Array.isArray(required.accepts) ? required.accepts : [];
  const offers = (terms.offers || []).filter((o) => accepts[o.accept]);

  // Result is a state to tell the user: kind "error" for a failure they may
  // act on, "done" for success.
  class Result extends Error {
    constructor(kind, message) {
      super(message);
      this.kind = kind;
    }
  }
  const fail = (text) => new Result('error', text);
  // sayer writes states into a status region.
  const sayer = (region) => (kind, text) => {
    region.dataset.state = kind;
    region.textContent = text;
  };
  const code = (e) => (e && typeof e === 'object' ? e.code : undefined);
  const message = (e) => String((e && e.message) || e || 'unknown error');
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const random = (n) => hex(crypto.getRandomValues(new Uint8Array(n)));
  const base64 = (text) => {
    const bytes = new TextEncoder().encode(text);
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  };
  const unbase64 = (b64) => {
    const s = atob(b64);
    return new TextDecoder().decode(Uint8Array.from(s, (c) => c.charCodeAt(0)));
  };

  // One payment at a time, whichever way: a button pressed while a payment
  // is under way does nothing.
  let busy = false;
  const exclusive = (section, button, run, say) => async () => {
    if (busy) return;
    busy = true;
    button.disabled = true;
    section.setAttribute('aria-busy', 'true');
    try {
      await run();
    } catch (e) {
      say('error', e instanceof Result ? e.message : 'Something went wrong: ' + message(e) + '.');
    } finally {
      busy = false;
      button.disabled = false;
      section.removeAttribute('aria-busy');
    }
  };

  async function problem(resp) {
    const type = resp.headers.get('Content-Type') || '';
    if (!/json/i.test(type)) return null;
    try {
      const p = await resp.json();
      return p && typeof p === 'object' ? p : null;
    } catch (e) {
      return null;
    }
  }

  // show puts the paid response on the page: HTML in a sandboxed frame
  // (no scripts, no access to this page), JSON pretty-printed, text as
  // text, images as images, anything else as a download; all can be saved.
  // receipt writes the receipt line. Every way to pay is then hidden, the
  // other way's whole section too: one payment buys one response, and
  // nothing on the page invites paying again.
  async function show(resp, receipt, lightning) {
    const type = (resp.headers.get('Content-Type') || 'application/octet-stream').split(';')[0].trim().toLowerCase();
    const disposition = resp.headers.get('Content-Disposition') || '';
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const content = $('content');
    content.replaceChildren();
    const text = () => blob.text();
    if (/^\s*attachment/i.test(disposition)) {
      // the seller asks for a download
    } else if (type === 'text/html' || type === 'application/xhtml+xml') {
      const frame = document.createElement('iframe');
      frame.setAttribute('sandbox', '');
      frame.title = 'Paid content';
      frame.srcdoc = await text();
      content.append(frame);
    } else if (type === 'application/json' || type.endsWith('+json')) {
      const pre = document.createElement('pre');
      const t = await text();
      try {
        pre.textContent = JSON.stringify(JSON.parse(t), null, 2);
      } catch (e) {
        pre.textContent = t;
      }
      content.append(pre);
    } else if (type.startsWith('text/')) {
      const pre = document.createElement('pre');
      pre.textContent = await text();
      content.append(pre);
    } else if (type.startsWith('image/')) {
      const img = document.createElement('img');
      img.src = url;
      img.alt = required.resource && required.resource.description ? required.resource.description : 'Paid image';
      content.append(img);
    }
    const save = document.createElement('a');
    save.href = url;
    save.download = filename(disposition);
    save.textContent = content.childElementCount ? 'Save the response' : 'Download the paid file (' + type + ', ' + blob.size + ' bytes)';
    const p = document.createElement('p');
    p.append(save);
    content.append(p);
    const r = $('receipt');
    r.replaceChildren();
    receipt(r);
    const done = lightning ? '#pay, #lightning > :not(h2):not([role=status])' : '#pay-button, #choose-offer, #choose-wallet, #lightning';
    document.querySelectorAll(done).forEach((el) => {
      el.hidden = true;
    });
    $('paid').hidden = false;
    $('paid-title').focus();
  }

  function filename(disposition) {
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
    let name = m ? m[1] : location.pathname.split('/').pop() || '';
    try {
      name = decodeURIComponent(name);
    } catch (e) {
      // keep it as it is
    }
    return name.replace(/[\\/:*?"<>|\u0000-\u001f]/g, '_') || 'paid-response';
  }

  if (offers.length) browserWallet();
  if (terms.lightning && $('lightning')) lightning(terms.lightning);

  // browserWallet pays the x402 offers with the browser's wallet.
  function browserWallet() {
    const section = $('pay'), button = $('pay-button'), say = sayer($('status'));
    const chooseOffer = $('choose-offer'), chooseWallet = $('choose-wallet'), walletSelect = $('wallet');
    let offer = offers[0];
    // One purchase id per offer for as long as the page is open: a payment
    // repeated after a lost answer names the same purchase, and the seller
    // does not charge it twice (x402 payment-identifier extension).
    const purchases = new Map();

    const updateButton = () => {
      button.textContent = 'Pay ' + offer.price + (offers.length > 1 ? ' on ' + offer.networkName : '');
    };
    // Offers, when there are several.
    if (offers.length > 1) {
      offers.forEach((o, i) => {
        const label = document.createElement('label');
        const radio = document.createElement('input');
        radio.type = 'radio';
        radio.name = 'offer';
        radio.value = String(i);
        radio.checked = i === 0;
        radio.addEventListener('change', () => {
          offer = offers[i];
          updateButton();
        });
        label.append(radio, ' ' + o.price + ' on ' + o.networkName);
        chooseOffer.append(label);
      });
      chooseOffer.hidden = false;
    }
    updateButton();

    // Wallets announce themselves (EIP-6963); several may.
    const wallets = new Map();
    window.addEventListener('eip6963:announceProvider', (event) => {
      const d = event.detail;
      if (!d || !d.info || !d.provider || typeof d.provider.request !== 'function') return;
      const id = String(d.info.uuid || d.info.rdns || d.info.name);
      if (!wallets.has(id)) {
        const opt = document.createElement('option');
        opt.value = id;
        opt.textContent = String(d.info.name || 'Wallet');
        walletSelect.append(opt);
      }
      wallets.set(id, d.provider);
      chooseWallet.hidden = wallets.size < 2;
    });
    window.dispatchEvent(new Event('eip6963:requestProvider'));

    const wallet = () => {
      if (wallets.size) return wallets.get(walletSelect.value) || wallets.values().next().value;
      const legacy = window.ethereum;
      return legacy && typeof legacy.request === 'function' ? legacy : null;
    };

    const rejected = (e) => code(e) === 4001 || code(e) === 'ACTION_REJECTED';
    const chainName = (id) => terms.networks[id] || 'chain ' + BigInt(id).toString();
    const hexID = (v) => '0x' + BigInt(v).toString(16);

    // format writes atomic units of the offer's asset for people.
    const format = (units, o) => {
      if (o.decimals < 0) return units.toString() + ' atomic units';
      const s = units.toString().padStart(o.decimals + 1, '0');
      const whole = s.slice(0, s.length - o.decimals);
      const frac = s.slice(s.length - o.decimals).replace(/0+$/, '');
      return whole + (frac ? '.' + frac : '') + (o.symbol ? ' ' + o.symbol : '');
    };

    async function connect(provider) {
      say('busy', 'Connecting to your wallet…');
      let accounts;
      try {
        accounts = await provider.request({ method: 'eth_requestAccounts' });
      } catch (e) {
        if (rejected(e)) throw fail('You declined to connect your wallet. Nothing was charged.');
        throw fail('Your wallet could not connect: ' + message(e));
      }
      const from = Array.isArray(accounts) ? accounts[0] : undefined;
      if (typeof from !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(from)) {
        throw fail('Your wallet gave no account to pay from. Unlock it and press Pay again.');
      }
      return from;
    }

    async function currentChain(provider) {
      try {
        return hexID(await provider.request({ method: 'eth_chainId' }));
      } catch (e) {
        throw fail('Your wallet did not say which chain it is on (' + message(e) + '). Nothing was charged.');
      }
    }

    // onChain makes sure the wallet is on the offer's chain: it asks to
    // switch, and to add the chain when the wallet lacks it and the page
    // knows its public RPC endpoint.
    async function onChain(provider, o) {
      let have = await currentChain(provider);
      if (have === o.chainId) return;
      const wrong = (why) =>
        fail('Your wallet is on ' + chainName(have) + '; this payment is on ' + o.networkName +
          ' (chain id ' + BigInt(o.chainId) + '). ' + why +
          'Switch your wallet to ' + o.networkName + ' and press Pay again. Nothing was charged.');
      say('busy', 'Asking your wallet to switch to ' + o.networkName + '…');
      try {
        await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: o.chainId }] });
      } catch (e) {
        if (code(e) !== 4902 || !o.addChain) {
          throw wrong(rejected(e) ? 'You declined the switch. ' : code(e) === 4902 ? 'Your wallet does not know this chain. ' : '');
        }
        try {
          await provider.request({ method: 'wallet_addEthereumChain', params: [o.addChain] });
        } catch (e2) {
          throw wrong(rejected(e2) ? 'You declined to add it. ' : '');
        }
      }
      have = await currentChain(provider);
      if (have !== o.chainId) throw wrong('');
    }

    // balance reads the payer's token balance through the wallet (eth_call of
    // balanceOf); null when the wallet cannot tell, and the seller's own
    // check decides.
    async function balance(provider, asset, owner) {
      try {
        const data = '0x70a08231' + owner.slice(2).toLowerCase().padStart(64, '0');
        const out = await provider.request({ method: 'eth_call', params: [{ to: asset, data }, 'latest'] });
        return typeof out === 'string' && /^0x[0-9a-fA-F]{1,64}$/.test(out) ? BigInt(out) : null;
      } catch (e) {
        return null;
      }
    }

    // authorize builds the EIP-3009 authorization for req, valid for the
    // offer's maxTimeoutSeconds: it starts a little in the past, so that a
    // browser clock slightly ahead of the seller's is still accepted, and its
    // whole window stays within the offer's.
    function authorize(from, req) {
      const window_ = req.maxTimeoutSeconds > 0 ? req.maxTimeoutSeconds : 60;
      const early = Math.min(30, Math.floor(window_ / 4));
      const now = Math.floor(Date.now() / 1000);
      return {
        from, to: req.payTo, value: String(req.amount),
        validAfter: String(Math.max(0, now - early)), validBefore: String(now - early + window_),
        nonce: '0x' + random(32),
      };
    }

    function typedData(req, o, auth) {
      return {
        types: {
          EIP712Domain: [
            { name: 'name', type: 'string' }, { name: 'version', type: 'string' },
            { name: 'chainId', type: 'uint256' }, { name: 'verifyingContract', type: 'address' },
          ],
          TransferWithAuthorization: [
            { name: 'from', type: 'address' }, { name: 'to', type: 'address' }, { name: 'value', type: 'uint256' },
            { name: 'validAfter', type: 'uint256' }, { name: 'validBefore', type: 'uint256' }, { name: 'nonce', type: 'bytes32' },
          ],
        },
        primaryType: 'TransferWithAuthorization',
        domain: { name: req.extra.name, version: req.extra.version, chainId: Number(BigInt(o.chainId)), verifyingContract: req.asset },
        message: auth,
      };
    }

    async function sign(provider, from, data) {
      say('busy', 'Confirm the payment of ' + offer.price + ' in your wallet…');
      try {
        const sig = await provider.request({ method: 'eth_signTypedData_v4', params: [from, JSON.stringify(data)] });
        if (typeof sig !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(sig)) throw new Error('not a 65-byte signature');
        return sig;
      } catch (e) {
        if (rejected(e)) throw fail('You rejected the signature request. Nothing was charged.');
        throw fail('Your wallet could not sign the payment: ' + message(e) + '. Nothing was charged.');
      }
    }

    function purchase(o) {
      if (!purchases.has(o)) purchases.set(o, 'pay_' + random(16));
      return purchases.get(o);
    }

    async function pay() {
      const o = offer, req = accepts[o.accept];
      window.dispatchEvent(new Event('eip6963:requestProvider'));
      const provider = wallet();
      if (!provider) {
        throw fail('No browser wallet was found. Install a wallet extension or open this page in a wallet app, then reload; or pay from a terminal with the commands below.');
      }
      const from = await connect(provider);
      await onChain(provider, o);
      say('busy', 'Checking your balance…');
      const have = await balance(provider, req.asset, from);
      if (have !== null && have < BigInt(req.amount)) {
        throw fail('Insufficient funds: ' + from + ' holds ' + format(have, o) + ' on ' + o.networkName +
          ', and this costs ' + o.price + '. Nothing was signed or charged.');
      }
      const auth = authorize(from, req);
      const signature = await sign(provider, from, typedData(req, o, auth));
      const payment = {
        x402Version: 2, resource: required.resource, accepted: req,
        payload: { signature, authorization: auth },
        extensions: { 'payment-identifier': { info: { id: purchase(o) } } },
      };
      say('busy', 'Paying ' + o.price + '…');
      let resp;
      try {
        resp = await fetch(location.href, {
          method: terms.method, cache: 'no-store', credentials: 'same-origin',
          // The upstream sees a browser's preference for HTML; refusals come
          // as JSON problems, which the page reads.
          headers: { [terms.header]: base64(JSON.stringify(payment)), Accept: 'application/problem+json, text/html;q=0.9, */*;q=0.8' },
        });
      } catch (e) {
        throw fail('The payment could not reach the seller (' + message(e) + '). Press Pay again: the same purchase is never charged twice.');
      }
      await answer(resp, o);
    }

    // receipt decodes the settlement header of resp, or null.
    function receipt(resp) {
      const h = resp.headers.get('PAYMENT-RESPONSE') || resp.headers.get('X-PAYMENT-RESPONSE');
      if (!h) return null;
      try {
        return JSON.parse(unbase64(h));
      } catch (e) {
        return null;
      }
    }

    async function answer(resp, o) {
      const settled = receipt(resp);
      if (resp.ok) {
        purchases.delete(o); // the next Pay is a new purchase
        await show(resp, (r) => describe(r, o, settled));
        say('done', 'Paid ' + o.price + '. The content is below.');
        return;
      }
      if (settled && settled.success === false) {
        throw fail('Settlement failed: ' + (settled.errorMessage || settled.errorReason || 'the transfer did not go through') +
          '. No money moved.');
      }
      const p = await problem(resp);
      if (!p || !p.reason) {
        throw fail('The seller\u2019s service answered ' + resp.status + ' ' + resp.statusText +
          '. You are not charged for a failed response.');
      }
      const why = (p.detail || p.title || 'refused') + ' (' + p.reason + ')';
      switch (true) {
        case p.reason === 'insufficient_funds':
          throw fail('Insufficient funds: ' + why + '. Nothing was charged.');
        case p.reason === 'settlement_not_sent' || p.reason === 'settlement_pending':
          throw fail('The settlement is not confirmed yet: ' + why + '. It may still complete; check your wallet\u2019s history before paying again.');
        case resp.status < 500:
          throw fail('The seller refused the payment: ' + why + '. Nothing was charged.');
        default:
          throw fail('The seller could not take the payment now: ' + why + '.');
      }
    }

    // describe writes the receipt of an x402 payment: the offer and the
    // settlement transaction.
    function describe(r, o, settled) {
      r.append('Paid ' + o.price + ' on ' + o.networkName + '.');
      if (settled && settled.transaction) {
        r.append(settled.pending ? ' Settlement sent, not yet confirmed: ' : ' Settlement transaction: ');
        const tx = document.createElement('code');
        tx.id = 'tx';
        tx.textContent = settled.transaction;
        if (o.explorer && /^0x[0-9a-fA-F]{64}$/.test(settled.transaction)) {
          const a = document.createElement('a');
          a.href = o.explorer + '/tx/' + settled.transaction;
          a.rel = 'noopener noreferrer';
          a.target = '_blank';
          a.append(tx);
          r.append(a);
        } else {
          r.append(tx);
        }
      }
    }

    button.addEventListener('click', exclusive(section, button, pay, say));
    section.hidden = false;
  }

  // lightning pays ln's invoice, the L402 offer's: with a WebLN wallet, or
  // with the preimage of a payment made elsewhere.
  function lightning(ln) {
    const section = $('lightning'), say = sayer($('ln-status'));
    const weblnRow = $('ln-webln-row'), weblnButton = $('ln-webln');
    const form = $('ln-paste'), input = $('ln-preimage'), send = $('ln-send'), copy = $('ln-copy');
    const expiresAt = $('ln-expires').textContent;
    // The invoice was issued for this page: its lifetime counts from when
    // the page loaded, on the monotonic clock, so a browser clock that is
    // off makes it look neither expired nor valid.
    const deadline = performance.now() + Math.max(0, ln.expires - ln.issued) * 1000;
    const expired = () => performance.now() >= deadline;
    const expiredText = 'This invoice expired at ' + expiresAt + ': reload the page for a fresh one. Nothing was paid from ' +
      'this page; if you paid the invoice before it expired, paste the payment\u2019s preimage below.';

    const left = $('ln-left');
    let timer = 0;
    const tick = () => {
      const s = Math.ceil((deadline - performance.now()) / 1000);
      if (s > 0) {
        left.textContent = s > 90 ? ' (in ' + Math.round(s / 60) + ' minutes)' : ' (in ' + s + ' seconds)';
        return;
      }
      clearInterval(timer);
      left.textContent = ' (expired)';
      weblnButton.disabled = true;
      if (!busy && $('paid').hidden) say('error', expiredText);
    };
    timer = setInterval(tick, 1000);
    tick();

    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(ln.invoice);
        say('info', 'The invoice is copied: paste it into your Lightning wallet.');
      } catch (e) {
        // No clipboard (a page not served over HTTPS): select the text.
        const range = document.createRange();
        range.selectNodeContents($('ln-invoice'));
        const sel = getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        say('info', 'The invoice is selected: copy it with your keyboard (Ctrl+C, \u2318C) or the context menu.');
      }
    });
    copy.hidden = false;

    const webln = () => (window.webln && typeof window.webln.sendPayment === 'function' ? window.webln : null);
    // Wallet extensions may inject window.webln after the page's script ran.
    const offerWebln = () => {
      if (webln() && $('paid').hidden) weblnRow.hidden = false;
    };
    offerWebln();
    window.addEventListener('webln:ready', offerWebln);
    window.addEventListener('load', offerWebln);

    // matches reports whether preimage (64 hex digits) pays the invoice:
    // whether its SHA-256 is the payment hash. Null when the browser cannot
    // hash (no WebCrypto outside secure contexts): the seller checks anyway.
    async function matches(preimage) {
      if (!window.crypto || !crypto.subtle) return null;
      const bytes = Uint8Array.from(preimage.match(/../g), (h) => parseInt(h, 16));
      return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))) === ln.paymentHash.toLowerCase();
    }

    async function payWithWebln() {
      const w = webln();
      if (!w) throw fail('No WebLN wallet was found. Pay the invoice with a wallet app (scan the code), then paste the preimage below.');
      if (expired()) throw fail(expiredText);
      say('busy', 'Connecting to your Lightning wallet\u2026');
      try {
        if (typeof w.enable === 'function') await w.enable();
      } catch (e) {
        throw fail('Your Lightning wallet declined to connect (' + message(e) + '). Nothing was paid.');
      }
      say('busy', 'Confirm the payment of ' + ln.price + ' in your Lightning wallet\u2026');
      let r;
      try {
        r = await w.sendPayment(ln.invoice);
      } catch (e) {
        throw fail('Your Lightning wallet did not pay (' + message(e) + '). Nothing was paid; if your wallet\u2019s history shows ' +
          'the payment, paste its preimage below.');
      }
      const preimage = r && typeof r.preimage === 'string' ? r.preimage.trim() : '';
      if (!/^[0-9a-fA-F]{64}$/.test(preimage) || (await matches(preimage)) === false) {
        throw fail('Your Lightning wallet answered without a preimage that pays this invoice. Check your wallet\u2019s history; ' +
          'if it paid, paste the payment\u2019s preimage below.');
      }
      // Kept in the form: should sending it fail, sending it again costs
      // nothing.
      input.value = preimage;
      await redeem(preimage);
    }

    async function paste() {
      const preimage = input.value.trim().replace(/^0x/i, '');
      if (!/^[0-9a-fA-F]{64}$/.test(preimage)) {
        input.setAttribute('aria-invalid', 'true');
        const what = preimage === '' ? 'the field is empty' :
          'this is ' + preimage.length + ' characters' + (/[^0-9a-fA-F]/.test(preimage) ? ', not all of them hexadecimal' : '');
        throw fail('That is not a preimage: a preimage is 64 hexadecimal characters (0\u20139, a\u2013f), and ' + what + '. Nothing was sent.');
      }
      if ((await matches(preimage)) === false) {
        input.setAttribute('aria-invalid', 'true');
        throw fail('This preimage does not pay this invoice: its SHA-256 is not the invoice\u2019s payment hash. Nothing was sent; ' +
          'copy the preimage of this invoice\u2019s payment from your wallet.');
      }
      input.removeAttribute('aria-invalid');
      await redeem(preimage);
    }

    // redeem sends the request again with the token and the preimage.
    async function redeem(preimage) {
      say('busy', 'Sending the proof of payment\u2026');
      let resp;
      try {
        resp = await fetch(location.href, {
          method: terms.method, cache: 'no-store', credentials: 'same-origin',
          headers: { Authorization: 'L402 ' + ln.token + ':' + preimage.toLowerCase(), Accept: 'application/problem+json, text/html;q=0.9, */*;q=0.8' },
        });
      } catch (e) {
        throw fail('The proof of payment could not reach the seller (' + message(e) + '). Send the preimage again: ' +
          'a paid invoice is never charged twice.');
      }
      if (resp.ok) {
        await show(resp, (r) => {
          r.append('Paid ' + ln.price + ' over Lightning. Payment hash: ');
          const h = document.createElement('code');
          h.id = 'ln-hash';
          h.textContent = ln.paymentHash;
          r.append(h);
        }, true);
        clearInterval(timer);
        left.textContent = '';
        say('done', 'Paid ' + ln.price + '. The content is below.');
        return;
      }
      const p = await problem(resp);
      if (!p || !p.reason) {
        throw fail('The seller\u2019s service answered ' + resp.status + ' ' + resp.statusText + '. You are not charged for a failed response.');
      }
      const why = (p.detail || p.title || 'refused') + ' (' + p.reason + ')';
      if (p.reason === 'l402_invoice_not_settled') {
        throw fail('The seller does not see the invoice paid yet: ' + why + '. If you just paid it, send the preimage again in a moment.');
      }
      if (resp.status < 500) throw fail('The seller refused the proof of payment: ' + why + '.');
      throw fail('The seller could not check the payment now: ' + why + '. Send the preimage again in a moment: ' +
        'a paid invoice is never charged twice.');
    }

    weblnButton.addEventListener('click', exclusive(section, weblnButton, payWithWebln, say));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      exclusive(section, send, paste, say)();
    });
    form.hidden = false;
  }
})();
