//! The registry's name: a name that does not resolve, a private endpoint's DNS answering
//! publicly or outside its ranges, and the resolver itself failing.

use super::*;

#[test]
fn network_article_dial_tcp_lookup_nxdomain_is_registry_name() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(
        &event("myregistri.azurecr.io", FailureKind::DnsNxDomain),
        now(),
    );
    assert_eq!(ids(&f)[0], "registry_name");
    assert_eq!(f[0].confidence, Confidence::High);
    assert!(!ids(&f).contains(&"private_endpoint_dns"));
}

#[test]
fn login_article_registry_name_hints() {
    let h = rules::name_hints("my-registry.azurecr.io");
    assert!(h.iter().any(|s| s.contains("letters and digits")), "{h:?}");
    let h = rules::name_hints("myregistry");
    assert!(
        h.iter().any(|s| s.contains("myregistry.azurecr.io")),
        "{h:?}"
    );
    let h = rules::name_hints("MyRegistry.azurecr.io");
    assert!(h.iter().any(|s| s.contains("upper-case")), "{h:?}");
    let h = rules::name_hints("myregistry.azurecr.com");
    assert!(h.iter().any(|s| s.contains(".azurecr.io")), "{h:?}");
    let h = rules::name_hints("myregistry.azurcr.io");
    assert!(h.iter().any(|s| s.contains(".azurecr.io")), "{h:?}");
    let h = rules::name_hints("abc.azurecr.io");
    assert!(h.iter().any(|s| s.contains("5 to 50")), "{h:?}");
    assert!(rules::name_hints("myregistry.azurecr.io").is_empty());
    assert!(rules::name_hints("registry-1.docker.io").is_empty());
}

#[test]
fn login_article_registry_name_nxdomain_evidence_carries_hints() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(
        &event("my-registry.azurecr.io", FailureKind::DnsNxDomain),
        now(),
    );
    assert_eq!(ids(&f)[0], "registry_name");
    assert!(evidence(&f, "registry_name").contains("letters and digits"));
}

#[test]
fn network_article_nxdomain_for_private_registry_offers_private_endpoint_dns() {
    let d = diagnoser(vec![private_registry(REG)]);
    let f = d.diagnose_at(&event(REG, FailureKind::DnsNxDomain), now());
    assert_eq!(ids(&f), vec!["registry_name", "private_endpoint_dns"]);
    assert!(f[0].confidence > f[1].confidence);
    assert!(evidence(&f, "private_endpoint_dns").contains("myregistry.privatelink.azurecr.io"));
}

#[test]
fn network_article_nxdomain_after_the_name_worked_is_not_a_name_problem() {
    let d = diagnoser(vec![private_registry(REG)]);
    let mut ping = exchange("GET", "ping", 401);
    ping.www_authenticate = Some(bearer_challenge(REG));
    assert!(judge(&d, REG, &ping).is_empty());
    let f = d.diagnose_at(&event(REG, FailureKind::DnsNxDomain), later(30));
    assert_eq!(ids(&f), vec!["private_endpoint_dns", "registry_name"]);
    assert!(evidence(&f, "private_endpoint_dns").contains("worked for this client 30s earlier"));
    let d = diagnoser(vec![]);
    assert!(judge(&d, REG, &ping).is_empty());
    let f = d.diagnose_at(&event(REG, FailureKind::DnsNxDomain), later(30));
    assert_eq!(ids(&f), vec!["client_firewall", "registry_name"]);
}

#[test]
fn network_article_private_endpoint_dns_privatelink_zone_without_record() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::DnsNoAddresses);
    ev.dns = Some(answer(&["myregistry.privatelink.azurecr.io"], &[]));
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f)[0], "private_endpoint_dns");
    assert_eq!(f[0].confidence, Confidence::High);
}

#[test]
fn network_article_private_endpoint_dns_public_answer() {
    let d = diagnoser(vec![private_registry(REG)]);
    let mut ev = event(REG, FailureKind::ConnectTimeout);
    ev.dns = Some(public_privatelink_chain());
    let f = d.diagnose_at(&ev, now());
    assert_eq!(ids(&f)[0], "private_endpoint_dns", "{:?}", ids(&f));
    let e = evidence(&f, "private_endpoint_dns");
    assert!(e.contains("20.50.2.4"), "{e}");
    assert!(e.contains("cloudapp.azure.com"), "{e}");
    // The same answer on a successful lookup is reported too.
    let ep = classify(REG, &[]);
    let r = d.judge_resolution(REG, &ep, &public_privatelink_chain());
    assert_eq!(r.map(|f| f.cause.id), Some("private_endpoint_dns"));
}

#[test]
fn network_article_private_endpoint_dns_outside_expected_cidrs() {
    let mut reg = private_registry(REG);
    reg.expected_cidrs = vec!["10.10.0.0/16".parse().unwrap()];
    let d = diagnoser(vec![reg]);
    let ep = classify(REG, &[]);
    let wrong = answer(&["myregistry.privatelink.azurecr.io"], &["10.20.0.5"]);
    let f = d.judge_resolution(REG, &ep, &wrong).expect("finding");
    assert!(f.evidence.join(" ").contains("10.10.0.0/16"));
    let right = answer(&["myregistry.privatelink.azurecr.io"], &["10.10.0.5"]);
    assert!(d.judge_resolution(REG, &ep, &right).is_none());
}

#[test]
fn private_answer_for_private_registry_is_quiet() {
    let d = diagnoser(vec![private_registry(REG)]);
    let ep = classify(REG, &[]);
    assert!(d.judge_resolution(REG, &ep, &private_chain()).is_none());
    // Data endpoints of the configured registry are checked by registry name.
    let dep = classify(DATA, &[]);
    let public = answer(
        &["myregistry.westeurope.data.privatelink.azurecr.io"],
        &["20.60.1.1"],
    );
    assert!(d.judge_resolution(DATA, &dep, &public).is_some());
    // Unconfigured registries are never judged on their answer.
    let other = classify("other.azurecr.io", &[]);
    assert!(d
        .judge_resolution("other.azurecr.io", &other, &public_privatelink_chain())
        .is_none());
}

#[test]
fn an_answer_through_the_search_list_names_the_name_that_answered() {
    let d = diagnoser(vec![]);
    let mut ev = event(REG, FailureKind::ConnectTimeout);
    ev.dns = Some(DnsAnswer {
        name: Some("myregistry.azurecr.io.corp.example".into()),
        ..answer(&["edge.corp.example"], &["192.0.2.7"])
    });
    let f = d.diagnose_at(&ev, now());
    assert!(
        f[0].evidence.iter().any(|e| e.starts_with(
            "answer (dns): myregistry.azurecr.io (as myregistry.azurecr.io.corp.example) -> edge.corp.example"
        )),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn dns_resolver_failure_is_not_a_name_problem() {
    let d = diagnoser(vec![]);
    let f = d.diagnose_at(&event(REG, FailureKind::DnsTimeout), now());
    assert_eq!(ids(&f), vec!["client_firewall"]);
}

#[test]
fn a_private_registry_reached_at_a_public_address_is_the_dns_whatever_it_answers() {
    // ACR's public endpoint refuses with its firewall; the registry should have been reached
    // through its private endpoint, so the name resolution leads and the firewall follows.
    let d = diagnoser(vec![private_registry(REG)]);
    let mut ping = exchange("GET", "ping", 403);
    ping.registry_errors = vec![acr_error(
        "DENIED",
        "client with IP '203.0.113.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.",
    )];
    let public = answer(&[], &["20.61.1.1"]);
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        Some(&public),
        &ping,
        now(),
    );
    assert_eq!(ids(&f), vec!["private_endpoint_dns", "public_access_rules"]);
    // Without the answer, or with a private one, the exchange is judged on its own.
    assert_eq!(ids(&judge(&d, REG, &ping)), vec!["public_access_rules"]);
    let private = answer(&[], &["10.1.2.3"]);
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        Some(&private),
        &ping,
        now(),
    );
    assert_eq!(ids(&f), vec!["public_access_rules"]);
    // A healthy exchange stays healthy whatever the answer.
    let mut ok = exchange("GET", "ping", 401);
    ok.www_authenticate = Some(bearer_challenge(REG));
    let f = d.judge_exchange_at(
        client(),
        REG,
        443,
        &classify(REG, &[]),
        Some(&public),
        &ok,
        now(),
    );
    assert!(f.is_empty(), "{:?}", ids(&f));
}
