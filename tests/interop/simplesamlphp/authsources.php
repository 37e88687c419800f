<?php
// The test's authentication sources: `default-sp` (a saml:SP) when
// test.json has `sp`, `example-userpass` (exampleauth:UserPass) when it
// has `idp`. Read on every request, so a test may rewrite test.json.
$test = json_decode(file_get_contents(__DIR__ . '/test.json'), true, 512, JSON_THROW_ON_ERROR);

$config = [
    'admin' => ['core:AdminPassword'],
];

if (isset($test['sp'])) {
    $sp = $test['sp'];
    // No entityID: SimpleSAMLphp's default, its metadata URL.
    $config['default-sp'] = [
        'saml:SP',
        'idp' => $sp['idp'],
        'privatekey' => 'sp-key.pem',
        'certificate' => 'sp.pem',
        'sign.authnrequest' => true,
        'sign.logout' => true,
        'redirect.sign' => true,
        'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
        // An array asks for that format; null lets SimpleSAMLphp send its
        // default (transient).
        'NameIDPolicy' => isset($sp['name_id_format'])
            ? ['Format' => $sp['name_id_format'], 'AllowCreate' => true]
            : null,
        'assertion.encryption' => $sp['want_encrypted'] ?? false,
    ];
}

if (isset($test['idp'])) {
    $users = [];
    foreach ($test['idp']['users'] as $login => $user) {
        $users[$login . ':' . $user['password']] = $user['attributes'];
    }
    $config['example-userpass'] = array_merge(['exampleauth:UserPass'], $users);
}
