//! SAML Single Logout through the real binary: three gateway apps on the
//! embedded IdP, logout from one signs the user out of all three and of the
//! IdP (the IdP walks the browser through every other app's SLO endpoint),
//! the IdP's own `/logout` does the same, and a LogoutRequest for a session
//! that no longer exists is still answered.

use http::StatusCode;
use test_support::browser::Browser;
use test_support::Reply;

use crate::gateway_sso::{get_json, post_acs, sso, start_with};

const IDP: &str = "https://a.test";
const APPS: [(&str, &str); 3] = [
    ("b", "https://b.test"),
    ("c", "https://c.test"),
    ("d", "https://app.test"),
];

async fn sign_in_everywhere(b: &Browser) {
    for (name, origin) in APPS {
        let acs = format!("{origin}/_portcullis/saml/acs");
        let posted = sso(b, &format!("pc_{name}_rs"), &format!("{origin}/page"), &acs).await;
        let landed = post_acs(b, &acs, &posted.saml_response, &posted.relay_state).await;
        assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
        assert_eq!(
            get_json(b, &format!("{origin}/page")).await.status,
            StatusCode::OK
        );
    }
}

/// Follows 303s from `url` (relative ones against the last origin) until a
/// page; returns it and every URL visited.
async fn follow(b: &Browser, url: &str) -> (Reply, Vec<String>) {
    let mut visited = vec![url.to_string()];
    let mut current = url.to_string();
    for _ in 0..20 {
        let reply = b.get(&current).await;
        if reply.status != StatusCode::SEE_OTHER {
            return (reply, visited);
        }
        let location = reply.location();
        current = if location.starts_with('/') {
            let origin_end = current[8..].find('/').map_or(current.len(), |i| i + 8);
            format!("{}{location}", &current[..origin_end])
        } else {
            location
        };
        visited.push(current.clone());
    }
    panic!("redirect loop: {visited:#?}");
}

async fn signed_out_everywhere(b: &Browser) {
    for (_, origin) in APPS {
        let after = get_json(b, &format!("{origin}/page")).await;
        assert_eq!(
            after.status,
            StatusCode::UNAUTHORIZED,
            "{origin}: {}",
            after.text()
        );
    }
    // The IdP session is gone too: its home page asks for a sign-in.
    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert!(home.location().ends_with("/login"), "{}", home.location());
}

#[tokio::test]
async fn logout_from_one_app_signs_out_of_every_app_and_the_idp() {
    let f = start_with("", &[("d", "https://app.test", "builtin:echo", "")]);
    let b = f.gw.browser();
    sign_in_everywhere(&b).await;

    let (page, visited) = follow(&b, "https://b.test/_portcullis/logout").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        page.text().contains("You are signed out."),
        "{}",
        page.text()
    );
    assert!(
        !page.text().contains("could not confirm"),
        "{}",
        page.text()
    );
    // b → IdP (signed LogoutRequest) → c and app.test (each a signed
    // LogoutRequest, answered) → b's SLO endpoint with the LogoutResponse.
    let idp_request = &visited[1];
    assert!(
        idp_request.starts_with(&format!("{IDP}/sso/saml/logout?SAMLRequest="))
            && idp_request.contains("Signature="),
        "{visited:#?}"
    );
    for origin in ["https://c.test", "https://app.test"] {
        assert!(
            visited
                .iter()
                .any(|u| u.starts_with(&format!("{origin}/_portcullis/saml/slo?SAMLRequest="))),
            "{origin} was not asked: {visited:#?}"
        );
    }
    assert!(
        visited
            .iter()
            .any(|u| u.starts_with("https://b.test/_portcullis/saml/slo?SAMLResponse=")),
        "{visited:#?}"
    );
    signed_out_everywhere(&b).await;
    assert!(
        f.gw.logs()
            .iter()
            .filter(|l| l.contains("\"reason\":\"single_logout\""))
            .count()
            >= 2
    );

    // The same LogoutRequest again names a session that no longer exists:
    // the IdP still answers b, and nothing breaks.
    let (page, visited) = follow(&b, idp_request).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        visited
            .iter()
            .any(|u| u.starts_with("https://b.test/_portcullis/saml/slo?SAMLResponse=")),
        "{visited:#?}"
    );

    // A tampered LogoutRequest (RelayState changed after signing) is refused.
    let tampered = idp_request.replace("RelayState=", "RelayState=x");
    let refused = b.get(&tampered).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn logout_at_the_idp_reaches_every_app() {
    let f = start_with("", &[("d", "https://app.test", "builtin:echo", "")]);
    let b = f.gw.browser();
    sign_in_everywhere(&b).await;
    let (page, visited) = follow(&b, &format!("{IDP}/logout")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        page.text().contains("every application you used"),
        "{}",
        page.text()
    );
    for (_, origin) in APPS {
        assert!(
            visited
                .iter()
                .any(|u| u.starts_with(&format!("{origin}/_portcullis/saml/slo?SAMLRequest="))),
            "{origin} was not asked: {visited:#?}"
        );
    }
    signed_out_everywhere(&b).await;
}

#[tokio::test]
async fn an_sp_that_cannot_be_told_makes_the_logout_partial() {
    let f = start_with("", &[]);
    let b = f.gw.browser();
    let acs = "https://b.test/_portcullis/saml/acs";
    let posted = sso(&b, "pc_b_rs", "https://b.test/page", acs).await;
    let landed = post_acs(&b, acs, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    // IdP-initiated SSO into an SP without a SingleLogoutService.
    let legacy = b.get(&format!("{IDP}/app/legacy/sso/saml")).await;
    assert_eq!(legacy.status, StatusCode::OK, "{}", legacy.text());
    assert!(legacy.text().contains("https://legacy.test/acs"));

    let (page, visited) = follow(&b, "https://b.test/_portcullis/logout").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("could not confirm"), "{}", page.text());
    assert!(
        visited
            .iter()
            .any(|u| u.starts_with("https://b.test/_portcullis/logged-out?partial=1")),
        "{visited:#?}"
    );
    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(
        home.status,
        StatusCode::SEE_OTHER,
        "the IdP session ended anyway"
    );
}
