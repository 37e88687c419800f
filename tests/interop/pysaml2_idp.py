#!/usr/bin/env python3
"""A pysaml2 identity provider driven by tests/e2e/interop.rs.

Each sub-command is a one-shot process (no server): the test's browser
carries messages between the gateway and this IdP.

  metadata --config CONFIG
      Prints the IdP's metadata XML (what the gateway's
      `idp = { metadata_file = ... }` reads).

  respond --config CONFIG --query QUERY
      QUERY is the raw query string of the HTTP-Redirect request the
      gateway sent the browser to. pysaml2 parses the AuthnRequest,
      verifies its query signature against the SP metadata, and answers
      with a signed assertion for the configured user. A NameIDPolicy
      asking for persistent gets the user's "persistent_id" (qualified by
      both entity ids). Prints {"acs_url", "saml_response", "relay_state",
      "request_id", "sp", "name_id_policy": {"format", "allow_create"}}.

  unsolicited --config CONFIG --sp ENTITY_ID [--response-only] [--sha1]
              [--encrypt CIPHER]
      An IdP-initiated response (no AuthnRequest) to the SP's ACS. With
      --encrypt, pysaml2 encrypts the assertion (xmlsec1, RSA-OAEP key
      transport) for the encryption certificate in the SP's metadata;
      CIPHER is "pysaml2-default" (what pysaml2 uses unless told:
      3DES-CBC) or "aes256-cbc".

  logout-request --config CONFIG --sp ENTITY_ID --name-id NAME_ID
      An IdP-initiated Single Logout: a signed Redirect LogoutRequest to the
      SP's SingleLogoutService. Prints {"location", "request_id"}.

  parse-logout-request --config CONFIG --query QUERY
      Verifies an SP's signed Redirect LogoutRequest (signature against the
      SP metadata) and prints {"name_id", "name_id_format",
      "name_qualifier", "sp_name_qualifier", "session_indexes"}.

  logout-response --config CONFIG --query QUERY
      Verifies the SP's signed Redirect LogoutResponse (signature against
      the SP metadata) and prints {"in_response_to", "status"}.

  soap-logout-request --config CONFIG --sp ENTITY_ID --name-id NAME_ID
                      [--session-index INDEX] [--unsigned]
      A back-channel Single Logout: a LogoutRequest signed by pysaml2 (its
      enveloped XML signature; --unsigned leaves it off) in a SOAP
      envelope for the SP's SOAP SingleLogoutService. Prints {"envelope",
      "location", "request_id"}; the test POSTs the envelope itself.

  soap-logout-response --config CONFIG --envelope FILE
      Verifies the SP's SOAP LogoutResponse in FILE (its signature against
      the SP metadata, required) and prints {"in_response_to", "status",
      "issuer"}.

CONFIG is a JSON file: {"entity_id", "sso_url", "slo_url", "key_file",
"cert_file", "sp_metadata": [files], "user": {"name_id", "attributes":
{name: [values]}}}.
Any pysaml2 error exits non-zero with the message on stderr.
"""

import argparse
import base64
import json
import shutil
import sys
import urllib.parse


def server(cfg):
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.saml import NAME_FORMAT_BASIC
    from saml2.server import Server

    xmlsec = shutil.which("xmlsec1")
    if xmlsec is None:
        sys.exit("pysaml2_idp: the xmlsec1 binary is not on PATH (apt-get install xmlsec1)")
    conf = IdPConfig()
    conf.load(
        {
            "entityid": cfg["entity_id"],
            "key_file": cfg["key_file"],
            "cert_file": cfg["cert_file"],
            "xmlsec_binary": xmlsec,
            "metadata": {"local": cfg.get("sp_metadata", [])},
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [
                            (cfg["sso_url"], BINDING_HTTP_REDIRECT)
                        ],
                        "single_logout_service": [
                            (cfg["slo_url"], BINDING_HTTP_REDIRECT)
                        ],
                    },
                    "want_authn_requests_signed": True,
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 5},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_BASIC,
                            "sign_assertion": True,
                            "sign_response": False,
                        }
                    },
                }
            },
        }
    )
    return Server(config=conf)


def load(path):
    with open(path) as f:
        return json.load(f)


def metadata(args):
    from saml2.metadata import create_metadata_string

    xml = create_metadata_string(None, config=server(load(args.config)).config, valid=None)
    sys.stdout.write(xml.decode() if isinstance(xml, bytes) else xml)


# pysaml2's choice of content cipher and xmlsec1 session key, by name.
CIPHERS = {
    "pysaml2-default": None,
    "aes256-cbc": ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", "aes-256"),
}


def use_cipher(name):
    """pysaml2 has no setting for the content cipher (it encrypts with
    3DES-CBC and a des-192 session key); operators who want AES patch
    both in, as here."""
    import functools

    import saml2.entity
    import saml2.sigver

    choice = CIPHERS[name]
    if choice is None:
        return
    uri, session_key = choice
    saml2.entity.pre_encryption_part = functools.partial(saml2.sigver.pre_encryption_part, msg_enc=uri)
    original = saml2.sigver.SecurityContext.encrypt_assertion

    def encrypt_assertion(self, statement, enc_key, template, key_type="des-192", node_xpath=None):
        return original(self, statement, enc_key, template, key_type=session_key, node_xpath=node_xpath)

    saml2.sigver.SecurityContext.encrypt_assertion = encrypt_assertion


def signed_response(
    idp,
    cfg,
    sp_entity_id,
    acs_url,
    in_response_to,
    policy_format=None,
    response_only=False,
    sha1=False,
    encrypt=None,
):
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT, NameID
    from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

    user = cfg["user"]
    if policy_format == NAMEID_FORMAT_PERSISTENT and "persistent_id" in user:
        name_id = NameID(
            format=NAMEID_FORMAT_PERSISTENT,
            name_qualifier=cfg["entity_id"],
            sp_name_qualifier=sp_entity_id,
            text=user["persistent_id"],
        )
    else:
        name_id = NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user["name_id"])
    response = idp.create_authn_response(
        identity=user["attributes"],
        in_response_to=in_response_to,
        destination=acs_url,
        sp_entity_id=sp_entity_id,
        name_id=name_id,
        authn={
            "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
        },
        # response_only: how some IdPs sign (the Response, not the Assertion).
        sign_assertion=not response_only,
        sign_response=response_only,
        # sha1: how legacy IdPs still sign.
        sign_alg=SIG_RSA_SHA1 if sha1 else SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA1 if sha1 else DIGEST_SHA256,
        encrypt_assertion=encrypt is not None,
    )
    return base64.b64encode(str(response).encode()).decode()


def respond(args):
    from saml2 import BINDING_HTTP_REDIRECT

    cfg = load(args.config)
    idp = server(cfg)
    query = dict(urllib.parse.parse_qsl(args.query, keep_blank_values=True))
    try:
        # With want_authn_requests_signed, pysaml2 requires and verifies
        # the query signature against the SP's metadata certificate.
        request = idp.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query.get("SigAlg"),
            signature=query.get("Signature"),
        )
        sp = request.message.issuer.text
        _binding, acs_url = idp.pick_binding(
            "assertion_consumer_service", entity_id=sp, request=request.message
        )
        policy = request.message.name_id_policy
        policy_format = policy.format if policy is not None else None
        saml_response = signed_response(idp, cfg, sp, acs_url, request.message.id, policy_format)
    except Exception as e:  # any rejection is the answer under test
        print(f"pysaml2 IdP refused the request: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(
        {
            "acs_url": acs_url,
            "saml_response": saml_response,
            "relay_state": query.get("RelayState"),
            "request_id": request.message.id,
            "sp": sp,
            "name_id_policy": None
            if policy is None
            else {"format": policy.format, "allow_create": policy.allow_create},
        },
        sys.stdout,
    )


def unsolicited(args):
    cfg = load(args.config)
    idp = server(cfg)
    try:
        acs_url = idp.metadata.assertion_consumer_service(args.sp)[0]["location"]
        if args.encrypt is not None:
            use_cipher(args.encrypt)
        saml_response = signed_response(
            idp,
            cfg,
            args.sp,
            acs_url,
            None,
            response_only=args.response_only,
            sha1=args.sha1,
            encrypt=args.encrypt,
        )
    except Exception as e:
        print(f"pysaml2 IdP failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump({"acs_url": acs_url, "saml_response": saml_response}, sys.stdout)


def logout_request(args):
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.xmldsig import SIG_RSA_SHA1, SIG_RSA_SHA256

    cfg = load(args.config)
    idp = server(cfg)
    try:
        destination = idp.metadata.single_logout_service(args.sp, BINDING_HTTP_REDIRECT, "spsso")[0]["location"]
        made = idp.create_logout_request(
            destination,
            args.sp,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=args.name_id),
            sign=False,
        )
        request_id, request = made if isinstance(made, tuple) else (made.id, made)
        http = idp.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(request),
            destination,
            "pysaml2-idp-logout",
            sign=True,
            # --sha1: the query signed the legacy way, as an old IdP would.
            sigalg=SIG_RSA_SHA1 if args.sha1 else SIG_RSA_SHA256,
        )
    except Exception as e:
        print(f"pysaml2 IdP failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump({"location": dict(http["headers"])["Location"], "request_id": request_id}, sys.stdout)


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
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    cfg = load(args.config)
    idp = server(cfg)
    try:
        destination = idp.metadata.single_logout_service(args.sp, BINDING_SOAP, "spsso")[0]["location"]
        extra = {"session_indexes": [args.session_index]} if args.session_index else {}
        made = idp.create_logout_request(
            destination,
            args.sp,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=args.name_id),
            sign=not args.unsigned,
            # pysaml2's default is RSA-SHA1, which the gateway refuses.
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            **extra,
        )
        request_id, request = made if isinstance(made, tuple) else (made.id, made)
        http = idp.apply_binding(BINDING_SOAP, str(request), destination, sign=False)
    except Exception as e:
        print(f"pysaml2 IdP failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump({"envelope": http["data"], "location": destination, "request_id": request_id}, sys.stdout)


def soap_logout_response(args):
    from saml2 import BINDING_SOAP

    cfg = load(args.config)
    idp = server(cfg)
    with open(args.envelope) as f:
        envelope = f.read()
    try:
        response = soap_message(idp, envelope, "spsso", "logout_response")
    except Exception as e:
        print(f"pysaml2 IdP refused the SOAP LogoutResponse: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(
        {
            "in_response_to": response.in_response_to,
            "status": response.status.status_code.value,
            "issuer": response.issuer.text,
        },
        sys.stdout,
    )


def signed_redirect_query(idp, raw_query, param):
    """The parsed query of a Redirect-binding message whose signature an SP
    in the metadata made; raises ValueError otherwise. pysaml2 checks these
    signatures only where its config requires them, so it is done here."""
    from saml2.sigver import verify_redirect_signature

    query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
    if "Signature" not in query:
        raise ValueError(f"the {param} message is not signed")
    signed = {k: query[k] for k in (param, "RelayState", "SigAlg", "Signature") if k in query}
    sps = list(idp.metadata.service_providers())
    certs = [c for sp in sps for c in idp.metadata.certs(sp, "spsso", "signing")]
    if not any(verify_redirect_signature(signed, idp.sec.sec_backend, cert=c[1]) for c in certs):
        raise ValueError(f"the {param} message's query signature does not verify")
    return query


def parse_logout_request(args):
    from saml2 import BINDING_HTTP_REDIRECT

    cfg = load(args.config)
    idp = server(cfg)
    try:
        query = signed_redirect_query(idp, args.query, "SAMLRequest")
        request = idp.parse_logout_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query.get("SigAlg"),
            signature=query.get("Signature"),
        )
        if request is None:
            raise ValueError("pysaml2 returned no request")
        name_id = request.message.name_id
    except Exception as e:
        print(f"pysaml2 IdP refused the LogoutRequest: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(
        {
            "name_id": name_id.text,
            "name_id_format": name_id.format,
            "name_qualifier": name_id.name_qualifier,
            "sp_name_qualifier": name_id.sp_name_qualifier,
            "session_indexes": [i.text for i in request.message.session_index],
        },
        sys.stdout,
    )


def logout_response(args):
    from saml2 import BINDING_HTTP_REDIRECT

    cfg = load(args.config)
    idp = server(cfg)
    try:
        query = signed_redirect_query(idp, args.query, "SAMLResponse")
        response = idp.parse_logout_request_response(query["SAMLResponse"], BINDING_HTTP_REDIRECT)
        if response is None:
            raise ValueError("pysaml2 returned no response")
    except Exception as e:
        print(f"pysaml2 IdP refused the LogoutResponse: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(
        {
            "in_response_to": response.response.in_response_to,
            "status": response.response.status.status_code.value,
            "relay_state": query.get("RelayState"),
        },
        sys.stdout,
    )


def main():
    try:
        import saml2  # noqa: F401
    except ImportError:
        sys.exit(f"pysaml2_idp: pysaml2 is not installed for {sys.executable} (run `make test-deps`)")
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    meta = sub.add_parser("metadata")
    meta.add_argument("--config", required=True)
    meta.set_defaults(run=metadata)
    res = sub.add_parser("respond")
    res.add_argument("--config", required=True)
    res.add_argument("--query", required=True)
    res.set_defaults(run=respond)
    uns = sub.add_parser("unsolicited")
    uns.add_argument("--config", required=True)
    uns.add_argument("--sp", required=True)
    uns.add_argument("--response-only", action="store_true")
    uns.add_argument("--sha1", action="store_true")
    uns.add_argument("--encrypt", choices=sorted(CIPHERS))
    uns.set_defaults(run=unsolicited)
    lreq = sub.add_parser("logout-request")
    lreq.add_argument("--config", required=True)
    lreq.add_argument("--sp", required=True)
    lreq.add_argument("--name-id", required=True)
    lreq.add_argument("--sha1", action="store_true")
    lreq.set_defaults(run=logout_request)
    plreq = sub.add_parser("parse-logout-request")
    plreq.add_argument("--config", required=True)
    plreq.add_argument("--query", required=True)
    plreq.set_defaults(run=parse_logout_request)
    lres = sub.add_parser("logout-response")
    lres.add_argument("--config", required=True)
    lres.add_argument("--query", required=True)
    lres.set_defaults(run=logout_response)
    sreq = sub.add_parser("soap-logout-request")
    sreq.add_argument("--config", required=True)
    sreq.add_argument("--sp", required=True)
    sreq.add_argument("--name-id", required=True)
    sreq.add_argument("--session-index")
    sreq.add_argument("--unsigned", action="store_true")
    sreq.set_defaults(run=soap_logout_request)
    sres = sub.add_parser("soap-logout-response")
    sres.add_argument("--config", required=True)
    sres.add_argument("--envelope", required=True)
    sres.set_defaults(run=soap_logout_response)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
