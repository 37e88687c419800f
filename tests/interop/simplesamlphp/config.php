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

    // `sql` (sqlite) when the test has SimpleSAMLphp's SP take SOAP
    // logout: its LogoutStore finds a session by NameID and SessionIndex
    // there, with no browser, and only then does its SP metadata offer
    // the SOAP SingleLogoutService. PHP's own session files otherwise.
    'store.type' => isset($test['sql_store']) ? 'sql' : 'phpsession',
    'store.sql.dsn' => 'sqlite:' . __DIR__ . '/data/store.sqlite',
    'session.phpsession.savepath' => __DIR__ . '/sessions/',
    // Plain http on loopback: SimpleSAMLphp refuses to set Secure
    // cookies without TLS, and SameSite=None needs Secure.
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'language.cookie.secure' => false,
    'language.cookie.samesite' => null,

    'metadata.sources' => [['type' => 'flatfile']],
    // With `metadata_sign` ({privatekey, certificate, algorithm?}, files
    // in cert/), the hosted IdP's and the SP's metadata pages are signed
    // (SimpleSAML\Metadata\Signer: RSA-SHA256 unless `algorithm` says).
    'metadata.sign.enable' => isset($test['metadata_sign']),
];
if (isset($test['metadata_sign'])) {
    $config['metadata.sign.privatekey'] = $test['metadata_sign']['privatekey'];
    $config['metadata.sign.certificate'] = $test['metadata_sign']['certificate'];
    if (isset($test['metadata_sign']['algorithm'])) {
        $config['metadata.sign.algorithm'] = $test['metadata_sign']['algorithm'];
    }
}
