<?php
// What the SP's session holds, as JSON: what an application protected by
// SimpleSAMLphp would see.
require_once '/usr/share/simplesamlphp/lib/_autoload.php';
$as = new \SimpleSAML\Auth\Simple('default-sp');
header('Content-Type: application/json');
if (!$as->isAuthenticated()) {
    echo json_encode(['authenticated' => false]);
    return;
}
$nameId = $as->getAuthData('saml:sp:NameID');
// The names SimpleSAMLphp's stock oid2name map gives the attributes.
$attributemap = [];
include '/etc/simplesamlphp/attributemap/oid2name.php';
$named = [];
foreach ($as->getAttributes() as $name => $values) {
    if (isset($attributemap[$name])) {
        $named[$attributemap[$name]] = $values;
    }
}
echo json_encode([
    'authenticated' => true,
    'attributes' => $as->getAttributes(),
    'oid2name' => $named,
    'name_id' => $nameId === null ? null : $nameId->getValue(),
    'name_id_format' => $nameId === null ? null : $nameId->getFormat(),
    'idp' => $as->getAuthData('saml:sp:IdP'),
    'session_index' => $as->getAuthData('saml:sp:SessionIndex'),
]);
