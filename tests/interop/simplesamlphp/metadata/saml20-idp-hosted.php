<?php
// The IdP SimpleSAMLphp hosts when test.json has `idp`: entity id
// {baseurl}saml2/idp/metadata.php, users from exampleauth:UserPass.
$test = json_decode(file_get_contents(dirname(__DIR__) . '/test.json'), true, 512, JSON_THROW_ON_ERROR);
$metadata = [];
if (isset($test['idp'])) {
    $metadata['__DYNAMIC:1__'] = [
        'host' => '__DEFAULT__',
        'privatekey' => 'idp-key.pem',
        'certificate' => 'idp.pem',
        'auth' => 'example-userpass',
        'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
        'sign.logout' => true,
        'redirect.sign' => true,
        'validate.authnrequest' => true,
        'validate.logout' => true,
        'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
        'simplesaml.nameidattribute' => 'email',
        'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
        // A persistent NameID (a salted hash of uid, per SP) for the SPs
        // that ask for one; the others get the email (NameIDFormat above).
        'authproc' => [
            10 => ['class' => 'saml:PersistentNameID', 'attribute' => 'uid'],
        ],
    ];
}
