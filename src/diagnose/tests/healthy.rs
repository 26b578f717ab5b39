//! Healthy flows must stay silent: challenges, redirects, successes and push's existence
//! checks are how a registry works, not failures.

use super::*;

#[test]
fn healthy_anonymous_ping_with_bearer_challenge() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    ping.registry_errors = vec![acr_error(
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    )];
    assert!(judge(&d, REG, &ping).is_empty());
    // ... and it counts as REST success for later data endpoint failures.
    let v = d
        .context
        .view(client(), DATA, &classify(DATA, &[]), later(1));
    assert!(v.rest_ok_age.is_some());
}

#[test]
fn healthy_basic_challenge_before_credentials() {
    let d = diagnoser(vec![]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(Challenge {
        scheme: "Basic".into(),
        realm: Some("Registry Realm".into()),
        ..Challenge::default()
    });
    assert!(judge(&d, "registry.internal", &ping).is_empty());
}

#[test]
fn healthy_anonymous_manifest_challenge_containerd_style() {
    let d = diagnoser(vec![]);
    let mut m = manifest("HEAD", 401, "app/web", "1.0");
    m.www_authenticate = Some(Challenge {
        scope: Some("repository:app/web:pull".into()),
        ..bearer_challenge(REG)
    });
    assert!(judge(&d, REG, &m).is_empty());
}

#[test]
fn healthy_redirects_and_successes() {
    let d = diagnoser(vec![]);
    let mut blob = exchange("GET", "blob", 307);
    blob.location = Some(format!("https://{DATA}/x?sig=abc"));
    assert!(judge(&d, REG, &blob).is_empty());
    let mut tok = token_request(200);
    tok.auth = Some(basic(UsernameKind::ServicePrincipal, None));
    tok.issued_token = Some(access_token("app/web", &["pull"]));
    assert!(judge(&d, REG, &tok).is_empty());
    let mut m = manifest("GET", 200, "app/web", "1.0");
    m.auth = Some(bearer(access_token("app/web", &["pull"])));
    assert!(judge(&d, REG, &m).is_empty());
    let mut put = manifest("PUT", 201, "app/web", "1.0");
    put.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    assert!(judge(&d, REG, &put).is_empty());
    assert!(judge(&d, REG, &exchange("GET", "ping", 200)).is_empty());
}

#[test]
fn healthy_head_blob_404_during_push() {
    let d = diagnoser(vec![]);
    let mut head = exchange("HEAD", "blob", 404);
    head.repository = Some("app/web".into());
    head.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    assert!(judge(&d, REG, &head).is_empty());
    // A HEAD on a manifest with a push token is the same existence check.
    let mut hm = manifest("HEAD", 404, "app/web", "1.2");
    hm.auth = Some(bearer(access_token("app/web", &["pull", "push"])));
    assert!(judge(&d, REG, &hm).is_empty());
    // With a pull-only token it is a pull of a missing tag.
    hm.auth = Some(bearer(access_token("app/web", &["pull"])));
    assert_eq!(ids(&judge(&d, REG, &hm)), vec!["not_found"]);
}

#[test]
fn healthy_containerd_manifest_existence_check_before_a_push() {
    // containerd asks for the manifest it is about to push, accepting its one media type; "no"
    // is expected even with a token that does not grant push (the push's refusal is judged on
    // the PUT).
    let d = diagnoser(vec![]);
    let mut hm = manifest("HEAD", 404, "app/web", "1.2");
    hm.user_agent = Some("containerd/1.6.20~ds1".into());
    hm.auth = Some(bearer(access_token("app/web", &["pull"])));
    hm.accept = Some("application/vnd.docker.distribution.manifest.v2+json, */*".into());
    assert!(hm.is_push_existence_check());
    assert!(judge(&d, REG, &hm).is_empty());
    // Its resolver, looking up a tag to pull, accepts every manifest type: a 404 there is a
    // missing tag.
    hm.accept = Some(
        "application/vnd.docker.distribution.manifest.v2+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, \
         application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*"
            .into(),
    );
    assert!(!hm.is_push_existence_check());
    assert_eq!(ids(&judge(&d, REG, &hm)), vec!["not_found"]);
    // Another client's single-type HEAD is not taken for containerd's push.
    hm.accept = Some("application/vnd.oci.image.manifest.v1+json".into());
    hm.user_agent = Some("docker/20.10.24".into());
    assert!(!hm.is_push_existence_check());
    assert_eq!(ids(&judge(&d, REG, &hm)), vec!["not_found"]);
}
