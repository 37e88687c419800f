#!/usr/bin/env python3
"""A pysaml2 service provider driven by tests/e2e/interop.rs.

Sub-commands, each a one-shot process (no server):

  metadata --config CONFIG
      Prints the SP's metadata XML (what the embedded IdP's
      `[[idp.service_provider]] metadata_file` reads); `idp_metadata` may be
      absent from CONFIG for this one.

  signed-metadata --config CONFIG --key PEM --cert PEM
      The same metadata signed by pysaml2 (enveloped, RSA-SHA256) with that
      key: what `metadata_url` with `metadata_signing_cert` trusts.

  authn-request --config CONFIG [--name-id-format URI]
      Builds a signed Redirect-binding AuthnRequest for the IdP in the
      metadata file and prints {"request_id", "location"}. With
      --name-id-format its NameIDPolicy asks for that format (default: the
      config's emailAddress).

  parse-response --config CONFIG --saml-response FILE --request-id ID
      Verifies the base64 SAMLResponse in FILE as an answer to request ID
      (HTTP-POST binding) and prints {"name_id", "name_id_format",
      "name_qualifier", "sp_name_qualifier", "issuer", "attributes",
      "name_formats", "ava" (pysaml2's own attribute mapping),
      "authn_context", "session_index"}. Any pysaml2 error exits non-zero
      with the message on stderr.

  logout-request --config CONFIG --query QUERY
      QUERY is the raw query string of the IdP's HTTP-Redirect
      LogoutRequest. pysaml2 verifies its signature against the IdP
      metadata and answers with a signed Redirect LogoutResponse; prints
      {"location", "name_id", "name_id_format", "session_indexes"}.

  soap-logout-request --config CONFIG --envelope FILE
      FILE holds the body of a SOAP POST from the IdP (back-channel Single
      Logout). pysaml2 unwraps the envelope and verifies the LogoutRequest's
      enveloped signature against the IdP metadata (required; see
      soap_message for why not through parse_logout_request), then answers
      with a signed LogoutResponse in a SOAP envelope; prints {"envelope",
      "name_id", "name_id_format", "name_qualifier", "sp_name_qualifier",
      "session_indexes", "issuer", "request_id"}.

CONFIG is a JSON file: {"entity_id", "acs_url", "slo_url", "key_file",
"cert_file", "idp_metadata", "enc_key_file", "enc_cert_file",
"soap_slo_url"}. With "soap_slo_url" the metadata offers a SOAP
SingleLogoutService there. With the enc_* files,
last two, the metadata offers that encryption key and parse-response
decrypts EncryptedAssertions with it (pysaml2's xmlsec1 backend).
"""

import argparse
import json
import shutil
import sys


def client(cfg):
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS

    xmlsec = shutil.which("xmlsec1")
    if xmlsec is None:
        sys.exit("pysaml2_sp: the xmlsec1 binary is not on PATH (apt-get install xmlsec1)")
    conf = SPConfig()
    conf.load(
        {
            "entityid": cfg["entity_id"],
            "key_file": cfg["key_file"],
            "cert_file": cfg["cert_file"],
            "xmlsec_binary": xmlsec,
            "metadata": {"local": [cfg["idp_metadata"]]} if "idp_metadata" in cfg else {},
            "allow_unknown_attributes": True,
            "encryption_keypairs": [
                {"key_file": cfg["enc_key_file"], "cert_file": cfg["enc_cert_file"]}
            ]
            if "enc_key_file" in cfg
            else [],
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [
                            (cfg["acs_url"], BINDING_HTTP_POST)
                        ],
                        "single_logout_service": [
                            (cfg["slo_url"], BINDING_HTTP_REDIRECT)
                        ]
                        + ([(cfg["soap_slo_url"], BINDING_SOAP)] if "soap_slo_url" in cfg else []),
                    },
                    "name_id_format": NAMEID_FORMAT_EMAILADDRESS,
                    "authn_requests_signed": True,
                    "want_assertions_signed": True,
                    "want_response_signed": False,
                    "allow_unsolicited": False,
                }
            },
        }
    )
    return Saml2Client(config=conf)


def metadata(args):
    from saml2.metadata import create_metadata_string

    with open(args.config) as f:
        cfg = json.load(f)
    xml = create_metadata_string(None, config=client(cfg).config, valid=None)
    sys.stdout.write(xml.decode() if isinstance(xml, bytes) else xml)


def signed_metadata(args):
    """The SP's metadata signed by pysaml2 with --key/--cert (a federation's
    key, not the SP's own: the SP's key may roll over under it)."""
    from saml2.config import Config
    from saml2.metadata import entity_descriptor, metadata_tostring_fix, sign_entity_descriptor
    from saml2.sigver import security_context
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    with open(args.config) as f:
        cfg = json.load(f)
    config = client(cfg).config
    signer = Config()
    signer.key_file = args.key
    signer.cert_file = args.cert
    signer.xmlsec_binary = config.xmlsec_binary
    signer.crypto_backend = config.crypto_backend
    descriptor, xmldoc = sign_entity_descriptor(
        entity_descriptor(config),
        None,
        security_context(signer),
        # pysaml2 signs metadata with RSA-SHA1 unless told otherwise, which
        # Portcullis refuses.
        SIG_RSA_SHA256,
        DIGEST_SHA256,
    )
    xml = metadata_tostring_fix(descriptor, {"xs": "http://www.w3.org/2001/XMLSchema"}, xmldoc)
    sys.stdout.write(xml.decode() if isinstance(xml, bytes) else xml)


def authn_request(args):
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.xmldsig import SIG_RSA_SHA1, SIG_RSA_SHA256

    with open(args.config) as f:
        cfg = json.load(f)
    sp = client(cfg)
    idps = list(sp.metadata.identity_providers())
    if len(idps) != 1:
        sys.exit(f"pysaml2_sp: expected one IdP in the metadata, got {idps}")
    extra = {"nameid_format": args.name_id_format} if args.name_id_format else {}
    request_id, info = sp.prepare_for_authenticate(
        entityid=idps[0],
        relay_state="/",
        binding=BINDING_HTTP_REDIRECT,
        sign=True,
        # --sha1: sign the query the legacy way, as an old SP would.
        sigalg=SIG_RSA_SHA1 if args.sha1 else SIG_RSA_SHA256,
        **extra,
    )
    location = dict(info["headers"])["Location"]
    json.dump({"request_id": request_id, "location": location}, sys.stdout)


def parse_response(args):
    from saml2 import BINDING_HTTP_POST

    with open(args.config) as f:
        cfg = json.load(f)
    with open(args.saml_response) as f:
        saml_response = f.read().strip()
    sp = client(cfg)
    try:
        resp = sp.parse_authn_request_response(
            saml_response,
            BINDING_HTTP_POST,
            outstanding={args.request_id: "/"},
        )
        if resp is None:
            raise ValueError("pysaml2 returned no response")
        assertion = resp.assertion
        attributes = {}
        name_formats = {}
        for statement in assertion.attribute_statement:
            for attribute in statement.attribute:
                values = attributes.setdefault(attribute.name, [])
                values.extend(v.text for v in attribute.attribute_value)
                name_formats[attribute.name] = attribute.name_format
        authn = assertion.authn_statement[0]
        context = authn.authn_context.authn_context_class_ref
        out = {
            "name_id": resp.name_id.text,
            "name_id_format": resp.name_id.format,
            "name_qualifier": resp.name_id.name_qualifier,
            "sp_name_qualifier": resp.name_id.sp_name_qualifier,
            "issuer": resp.issuer(),
            "attributes": attributes,
            "name_formats": name_formats,
            "ava": resp.ava,
            "authn_context": context.text if context is not None else None,
            "session_index": authn.session_index,
        }
    except Exception as e:  # any rejection is the answer under test
        print(f"pysaml2 rejected the response: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)


def logout_request(args):
    import urllib.parse

    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.samlp import STATUS_SUCCESS
    from saml2.s_utils import success_status_factory
    from saml2.xmldsig import SIG_RSA_SHA256

    with open(args.config) as f:
        cfg = json.load(f)
    sp = client(cfg)
    query = dict(urllib.parse.parse_qsl(args.query, keep_blank_values=True))
    try:
        if "Signature" not in query:
            raise ValueError("the LogoutRequest is not signed")
        # pysaml2 checks Redirect signatures only where it *requires* them,
        # which an SP config cannot ask for; check against the IdP's
        # metadata certificates explicitly.
        from saml2.sigver import verify_redirect_signature

        signed = {k: query[k] for k in ("SAMLRequest", "RelayState", "SigAlg", "Signature") if k in query}
        idps = list(sp.metadata.identity_providers())
        certs = [c for idp in idps for c in sp.metadata.certs(idp, "idpsso", "signing")]
        if not any(verify_redirect_signature(signed, sp.sec.sec_backend, cert=c[1]) for c in certs):
            raise ValueError("the LogoutRequest's query signature does not verify")
        request = sp.parse_logout_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query.get("SigAlg"),
            signature=query.get("Signature"),
        )
        if request is None:
            raise ValueError("pysaml2 returned no request")
        response = sp.create_logout_response(
            request.message,
            bindings=[BINDING_HTTP_REDIRECT],
            status=success_status_factory(),
            sign=False,
        )
        rinfo = sp.response_args(request.message, [BINDING_HTTP_REDIRECT])
        http = sp.apply_binding(
            rinfo["binding"],
            response,
            rinfo["destination"],
            query.get("RelayState"),
            response=True,
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
    except Exception as e:  # any rejection is the answer under test
        print(f"pysaml2 rejected the LogoutRequest: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    assert STATUS_SUCCESS
    json.dump(
        {
            "location": dict(http["headers"])["Location"],
            "name_id": request.message.name_id.text,
            "name_id_format": request.message.name_id.format,
            "session_indexes": [i.text for i in request.message.session_index],
        },
        sys.stdout,
    )


def soap_message(entity, envelope, role, msgtype):
    """The SAML message in a SOAP envelope, its enveloped signature verified
    (required) against the issuer's signing certificates in the metadata.

    pysaml2's own SOAP parsing re-serializes the message with ElementTree
    (prefixes renamed ns0, ns1, ...) before checking a signature, and
    exclusive canonicalization covers prefixes: only messages that already
    used ElementTree's prefixes verify that way. So pysaml2's xmlsec1
    backend checks the signature on the envelope as received, and pysaml2
    reads the message itself."""
    from saml2 import BINDING_SOAP, samlp
    from saml2.sigver import make_temp, pem_format

    xml = entity.unravel(envelope, BINDING_SOAP, msgtype)
    message = getattr(samlp, f"{msgtype}_from_string")(xml)
    if message is None:
        raise ValueError(f"no {msgtype} in the SOAP envelope")
    if message.signature is None:
        raise ValueError(f"the SOAP {msgtype} is not signed")
    node = f"{message.c_namespace}:{message.c_tag}"
    for _, cert in entity.metadata.certs(message.issuer.text, role, "signing"):
        pem = make_temp(pem_format(cert), suffix=".pem", decode=False)
        try:
            if entity.sec.verify_signature(envelope, pem.name, node_name=node, node_id=message.id):
                return message
        except Exception:  # a failed check raises; try the next certificate
            pass
    raise ValueError(f"the SOAP {msgtype}'s signature does not verify")


def soap_logout_request(args):
    from saml2 import BINDING_SOAP
    from saml2.s_utils import success_status_factory
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    with open(args.config) as f:
        cfg = json.load(f)
    with open(args.envelope) as f:
        envelope = f.read()
    sp = client(cfg)
    try:
        message = soap_message(sp, envelope, "idpsso", "logout_request")
        response = sp.create_logout_response(
            message,
            bindings=[BINDING_SOAP],
            status=success_status_factory(),
            sign=True,
            # pysaml2's default is RSA-SHA1, which the IdP refuses.
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        # Signed above already; the binding only wraps it.
        http = sp.apply_binding(BINDING_SOAP, str(response), "", response=True, sign=False)
    except Exception as e:  # any rejection is the answer under test
        import traceback

        traceback.print_exc()
        print(f"pysaml2 rejected the SOAP LogoutRequest: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    name_id = message.name_id
    json.dump(
        {
            "envelope": http["data"],
            "name_id": name_id.text,
            "name_id_format": name_id.format,
            "name_qualifier": name_id.name_qualifier,
            "sp_name_qualifier": name_id.sp_name_qualifier,
            "session_indexes": [i.text for i in message.session_index],
            "issuer": message.issuer.text,
            "request_id": message.id,
        },
        sys.stdout,
    )


def main():
    try:
        import saml2  # noqa: F401
    except ImportError:
        sys.exit(f"pysaml2_sp: pysaml2 is not installed for {sys.executable} (run `make test-deps`)")
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    meta = sub.add_parser("metadata")
    meta.add_argument("--config", required=True)
    meta.set_defaults(run=metadata)
    signed = sub.add_parser("signed-metadata")
    signed.add_argument("--config", required=True)
    signed.add_argument("--key", required=True)
    signed.add_argument("--cert", required=True)
    signed.set_defaults(run=signed_metadata)
    req = sub.add_parser("authn-request")
    req.add_argument("--config", required=True)
    req.add_argument("--name-id-format")
    req.add_argument("--sha1", action="store_true")
    req.set_defaults(run=authn_request)
    lo = sub.add_parser("logout-request")
    lo.add_argument("--config", required=True)
    lo.add_argument("--query", required=True)
    lo.set_defaults(run=logout_request)
    res = sub.add_parser("parse-response")
    res.add_argument("--config", required=True)
    res.add_argument("--saml-response", required=True)
    res.add_argument("--request-id", required=True)
    res.set_defaults(run=parse_response)
    slo = sub.add_parser("soap-logout-request")
    slo.add_argument("--config", required=True)
    slo.add_argument("--envelope", required=True)
    slo.set_defaults(run=soap_logout_request)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
