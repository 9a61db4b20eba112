<?php
// pay.php URL: ask for URL with PHP's curl extension; on 402 Payment
// Required, print what it costs and how to pay.
//
// The terms come from the PAYMENT-REQUIRED header (x402 v2: base64 JSON), or,
// from servers that only speak x402 v1, from the JSON body's "accepts". The
// price for people ("0.001 USDC") comes from the body when the server states
// it, as coinop does. Needs php-cli and php-curl.
//
//   php examples/pay.php http://127.0.0.1:8402/weather
//
// Exit status: 0 for a 402 whose terms were read and for any success, 1 for
// any other answer.

if ($argc !== 2) {
    fwrite(STDERR, "usage: pay.php URL\n");
    exit(2);
}
$url = $argv[1];

$headers = [];
$ch = curl_init($url);
curl_setopt_array($ch, [
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_TIMEOUT => 30,
    CURLOPT_HTTPHEADER => ['Accept: application/json'],
    CURLOPT_HEADERFUNCTION => function ($ch, $line) use (&$headers) {
        $parts = explode(':', $line, 2);
        if (count($parts) === 2) {
            $headers[strtolower(trim($parts[0]))] = trim($parts[1]);
        }
        return strlen($line);
    },
]);
$raw = curl_exec($ch);
if ($raw === false) {
    fwrite(STDERR, "request failed: " . curl_error($ch) . "\n");
    exit(1);
}
$status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
curl_close($ch);

if ($status !== 402) {
    echo "status: $status (nothing to pay)\n$raw\n";
    exit($status < 400 ? 0 : 1);
}

// b64json decodes standard base64 JSON, with or without padding.
function b64json(string $value): ?array
{
    $value = trim($value);
    $value .= str_repeat('=', (4 - strlen($value) % 4) % 4);
    $decoded = base64_decode($value, true);
    return $decoded === false ? null : json_decode($decoded, true);
}

$body = json_decode($raw, true);
if (!is_array($body)) {
    $body = [];
}
if (isset($headers['payment-required'])) {
    $offer = b64json($headers['payment-required'])['accepts'][0] ?? null;
    $amount = $offer['amount'] ?? null;
    $header = 'PAYMENT-SIGNATURE';
} elseif (!empty($body['accepts'])) {
    $offer = $body['accepts'][0];
    $amount = $offer['maxAmountRequired'] ?? null;
    $header = 'X-PAYMENT';
}
if (empty($offer) || $amount === null) {
    fwrite(STDERR, "the 402 states no x402 terms\n");
    exit(1);
}

echo "402 Payment Required: " . ($body['detail'] ?? '') . "\n";
echo "price: " . ($body['price'] ?? "$amount atomic units of {$offer['asset']}") . "\n";
echo "scheme: {$offer['scheme']}\n";
echo "network: {$offer['network']}\n";
echo "asset: {$offer['asset']}\n";
echo "payTo: {$offer['payTo']}\n";
echo "amount: $amount\n";
echo "header: $header\n";
echo "to pay: curl -H \"$header: \$(coinop sign $url)\" $url\n";
echo "    or: coinop curl $url\n";
