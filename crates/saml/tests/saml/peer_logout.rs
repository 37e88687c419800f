//! A service provider's check of its IdP's Single Logout messages
//! (`verify_logout_message`): both bindings accepted from the trusted peer,
//! and refused when the Issuer, Destination, signature or time is wrong.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use portcullis_saml::*;

const IDP: &str = "https://idp.example.test/metadata";
const SP: &str = "https://app.example.test/_portcullis/saml/metadata";
const SP_SLO: &str = "https://app.example.test/_portcullis/saml/slo";
const LIMIT: usize = 64 * 1024;

fn idp_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("peer idp", 30).expect("key"))
}

fn certs() -> Vec<Vec<u8>> {
    vec![idp_key().cert_der().expect("cert")]
}

fn expect(certs: &[Vec<u8>]) -> LogoutExpectations<'_> {
    LogoutExpectations {
        peer_entity_id: IDP,
        peer_certs: certs,
        allow_sha1: false,
        our_slo_url: SP_SLO,
        max_bytes: LIMIT,
        clock_skew: Duration::from_secs(180),
    }
}

fn request(issuer: &'static str, destination: &'static str, validity: u64) -> String {
    build_logout_request_redirect(
        &LogoutRequestParams {
            issuer,
            destination,
            name_id: "bob@example.test",
            name_id_format: None,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: Some("102sess"),
            relay_state: Some("/x"),
            now: Utc::now() - chrono::Duration::seconds(600),
            validity: Duration::from_secs(validity),
        },
        idp_key(),
    )
    .expect("request")
    .url
}

fn query(url: &str) -> &str {
    url.split_once('?').expect("query").1
}

#[test]
fn the_peers_request_and_response_are_accepted_over_both_bindings() {
    let certs = certs();
    let url = request(IDP, SP_SLO, 3600);
    match verify_logout_message(
        LogoutBinding::Redirect { query: query(&url) },
        &expect(&certs),
        Utc::now(),
    ) {
        Ok(LogoutMessage::Request(r)) => {
            assert_eq!(r.name_id, "bob@example.test");
            assert_eq!(r.session_indexes, ["102sess"]);
            assert_eq!(r.relay_state.as_deref(), Some("/x"));
        }
        other => panic!("{other:?}"),
    }
    let response = build_logout_response_post(
        &LogoutResponseParams {
            issuer: IDP,
            destination: SP_SLO,
            in_response_to: Some("_ours"),
            status: LogoutStatus::PartialLogout,
            relay_state: None,
            now: Utc::now(),
        },
        idp_key(),
    )
    .expect("response");
    match verify_logout_message(
        LogoutBinding::Post {
            saml_request: None,
            saml_response: Some(&response.form_value),
            relay_state: Some("/y"),
        },
        &expect(&certs),
        Utc::now(),
    ) {
        Ok(LogoutMessage::Response(r)) => {
            assert!(r.is_partial());
            assert_eq!(r.in_response_to.as_deref(), Some("_ours"));
            assert_eq!(r.relay_state.as_deref(), Some("/y"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_issuer_destination_time_or_signer_is_refused() {
    let certs = certs();
    let verify = |url: &str| {
        verify_logout_message(
            LogoutBinding::Redirect { query: query(url) },
            &expect(&certs),
            Utc::now(),
        )
    };
    assert!(matches!(
        verify(&request(SP, SP_SLO, 3600)),
        Err(Error::Issuer { .. })
    ));
    assert!(matches!(
        verify(&request(IDP, "https://other.example.test/slo", 3600)),
        Err(Error::Destination { .. })
    ));
    assert!(matches!(
        verify(&request(IDP, SP_SLO, 60)),
        Err(Error::Condition(ConditionFailure::Expired))
    ));
    let stranger = vec![SigningKey::generate_self_signed("stranger", 1)
        .expect("key")
        .cert_der()
        .expect("cert")];
    let url = request(IDP, SP_SLO, 3600);
    assert!(matches!(
        verify_logout_message(
            LogoutBinding::Redirect { query: query(&url) },
            &expect(&stranger),
            Utc::now()
        ),
        Err(Error::Signature(_))
    ));
}

#[test]
fn a_message_that_is_neither_or_both_is_refused() {
    let certs = certs();
    for binding in [
        LogoutBinding::Redirect {
            query: "RelayState=x",
        },
        LogoutBinding::Post {
            saml_request: None,
            saml_response: None,
            relay_state: None,
        },
        LogoutBinding::Post {
            saml_request: Some("a"),
            saml_response: Some("b"),
            relay_state: None,
        },
    ] {
        let err = verify_logout_message(binding, &expect(&certs), Utc::now()).expect_err("refused");
        assert_eq!(err.kind(), "binding", "{err}");
    }
}

#[test]
fn a_sha1_signed_message_from_the_peer_needs_its_opt_in() {
    let certs = certs();
    let q = super::sha1::resign_query(query(&request(IDP, SP_SLO, 3600)), idp_key());
    let binding = LogoutBinding::Redirect { query: &q };
    assert!(matches!(
        verify_logout_message(binding, &expect(&certs), Utc::now()),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(_)))
    ));
    let opted_in = LogoutExpectations {
        allow_sha1: true,
        ..expect(&certs)
    };
    assert!(matches!(
        verify_logout_message(binding, &opted_in, Utc::now()),
        Ok(LogoutMessage::Request(_))
    ));

    let response = build_logout_response_post(
        &LogoutResponseParams {
            issuer: IDP,
            destination: SP_SLO,
            in_response_to: Some("_ours"),
            status: LogoutStatus::Success,
            relay_state: None,
            now: Utc::now(),
        },
        idp_key(),
    )
    .expect("response");
    let form = super::sha1::resign_form_value(&response.xml, idp_key());
    let binding = LogoutBinding::Post {
        saml_request: None,
        saml_response: Some(&form),
        relay_state: None,
    };
    assert!(matches!(
        verify_logout_message(binding, &expect(&certs), Utc::now()),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(_)))
    ));
    assert!(matches!(
        verify_logout_message(binding, &opted_in, Utc::now()),
        Ok(LogoutMessage::Response(r)) if r.is_success()
    ));
}
