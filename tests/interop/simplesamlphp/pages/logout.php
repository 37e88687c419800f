<?php
// Starts SP-initiated Single Logout; the browser comes back to whoami.php.
require_once '/usr/share/simplesamlphp/lib/_autoload.php';
$as = new \SimpleSAML\Auth\Simple('default-sp');
$as->logout(['ReturnTo' => \SimpleSAML\Utils\HTTP::getBaseURL() . 'portcullis-test/whoami.php']);
