<?php
// Router for `php -S … -t /usr/share/simplesamlphp/www`: the test's own
// pages under /portcullis-test/, everything else is SimpleSAMLphp's.
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (preg_match('#^/portcullis-test/([a-z]+)\.php$#', $path, $m)
    && is_file(__DIR__ . '/pages/' . $m[1] . '.php')) {
    require __DIR__ . '/pages/' . $m[1] . '.php';
    return true;
}
return false;
