<?php
// The IdPs the SP trusts: each XML metadata file test.json lists, read
// with SimpleSAMLphp's own metadata parser.
$test = json_decode(file_get_contents(dirname(__DIR__) . '/test.json'), true, 512, JSON_THROW_ON_ERROR);
$metadata = [];
foreach ($test['sp']['idp_metadata'] ?? [] as $file) {
    foreach (\SimpleSAML\Metadata\SAMLParser::parseDescriptorsFile($file) as $entity) {
        $idp = $entity->getMetadata20IdP();
        if ($idp !== null) {
            $metadata[$idp['entityid']] = $idp;
        }
    }
}
