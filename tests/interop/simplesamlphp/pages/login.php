<?php
// Starts SP-initiated sign-in; the browser comes back to whoami.php.
require_once '/usr/share/simplesamlphp/lib/_autoload.php';
$as = new \SimpleSAML\Auth\Simple('default-sp');
$as->login(['ReturnTo' => \SimpleSAML\Utils\HTTP::getBaseURL() . 'portcullis-test/whoami.php']);
