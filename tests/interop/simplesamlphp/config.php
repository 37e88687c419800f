<?php
// SimpleSAMLphp's config.php for one test: copied into the test's
// SIMPLESAMLPHP_CONFIG_DIR, everything else from test.json beside it.
$test = json_decode(file_get_contents(__DIR__ . '/test.json'), true, 512, JSON_THROW_ON_ERROR);
$host = parse_url($test['baseurl'], PHP_URL_HOST);

$config = [
    // A full URL: the built-in server serves www/ at the root, and
    // SimpleSAMLphp writes its endpoints (ACS, SLO, Destination) from it.
    'baseurlpath' => $test['baseurl'],
    'certdir' => __DIR__ . '/cert/',
    'loggingdir' => __DIR__ . '/log/',
    'datadir' => __DIR__ . '/data/',
    'tempdir' => __DIR__ . '/tmp/',
    'metadatadir' => __DIR__ . '/metadata/',
    'attributenamemapdir' => '/etc/simplesamlphp/attributemap/',
    'secretsalt' => $test['secretsalt'],
    'auth.adminpassword' => $test['secretsalt'],
    'technicalcontact_name' => 'Portcullis tests',
    'technicalcontact_email' => 'tests@example.org',
    'timezone' => 'UTC',
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,
    'trusted.url.domains' => [$host],
    'enable.http_post' => false,

    'debug' => ['saml' => true, 'backtraces' => true, 'validatexml' => false],
    'showerrors' => true,
    'errorreporting' => false,
    'production' => false,
    'logging.level' => SimpleSAML\Logger::DEBUG,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',
    'statistics.out' => [],

    'enable.saml20-idp' => isset($test['idp']),
    'module.enable' => [
        'core' => true,
        'saml' => true,
        'admin' => true,
        'exampleauth' => isset($test['idp']),
    ],

    'store.type' => 'phpsession',
    'session.phpsession.savepath' => __DIR__ . '/sessions/',
    // Plain http on loopback: SimpleSAMLphp refuses to set Secure
    // cookies without TLS, and SameSite=None needs Secure.
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'language.cookie.secure' => false,
    'language.cookie.samesite' => null,

    'metadata.sources' => [['type' => 'flatfile']],
    'metadata.sign.enable' => false,
];
