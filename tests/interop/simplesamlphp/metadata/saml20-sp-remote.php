<?php
// The SPs the IdP serves: each XML metadata file test.json lists, read
// with SimpleSAMLphp's own metadata parser, plus `sp_options` (e.g.
// `assertion.encryption`) for every one of them.
$test = json_decode(file_get_contents(dirname(__DIR__) . '/test.json'), true, 512, JSON_THROW_ON_ERROR);
$metadata = [];
foreach ($test['idp']['sp_metadata'] ?? [] as $file) {
    foreach (\SimpleSAML\Metadata\SAMLParser::parseDescriptorsFile($file) as $entity) {
        $sp = $entity->getMetadata20SP();
        if ($sp !== null) {
            $metadata[$sp['entityid']] = array_merge($sp, $test['idp']['sp_options'] ?? []);
        }
    }
}
