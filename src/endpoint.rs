//! Classification of a destination host: which part of a registry service it is.
//!
//! Pure functions: the diagnosis needs to know whether a failing host is a registry's REST
//! endpoint, one of its data endpoints, blob storage or an identity service, and which registry
//! and region it belongs to. [`registry_name_issues`] spots the usual ways a registry name is
//! mistyped, for the "registry name wrong" cause.

use std::net::IpAddr;

use serde::Serialize;

/// What kind of endpoint a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// `<name>.azurecr.io` (or a sovereign-cloud twin, or a geo-replica's regional endpoint
    /// `<name>.<region>.geo.azurecr.io`), or a registry named in the configuration.
    RegistryRest,
    /// `<name>.<region>.data.azurecr.io`
    DataEndpoint,
    /// `*.blob.core.windows.net` (and sovereign-cloud twins)
    BlobStorage,
    /// `login.microsoftonline.com` and other Entra ID hosts.
    Identity,
    /// `management.azure.com` (and sovereign-cloud twins)
    Management,
    #[default]
    Other,
}

impl EndpointKind {
    /// Every kind, in declaration order.
    pub const ALL: [EndpointKind; 6] = [
        EndpointKind::RegistryRest,
        EndpointKind::DataEndpoint,
        EndpointKind::BlobStorage,
        EndpointKind::Identity,
        EndpointKind::Management,
        EndpointKind::Other,
    ];

    /// The snake_case name used in log records.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::RegistryRest => "registry_rest",
            EndpointKind::DataEndpoint => "data_endpoint",
            EndpointKind::BlobStorage => "blob_storage",
            EndpointKind::Identity => "identity",
            EndpointKind::Management => "management",
            EndpointKind::Other => "other",
        }
    }

    /// Data endpoints and blob storage carry layers; failures there after REST success mean a
    /// firewall or DNS gap for the data path.
    pub fn is_data(self) -> bool {
        matches!(self, EndpointKind::DataEndpoint | EndpointKind::BlobStorage)
    }
}

/// A classified host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Endpoint {
    pub kind: EndpointKind,
    /// Registry name (`myregistry` for `myregistry.azurecr.io`), or the configured host.
    pub registry: Option<String>,
    /// Region of a data endpoint or a regional (geo) endpoint (`westeurope`).
    pub region: Option<String>,
}

/// Registry domains of the public and sovereign Azure clouds.
const REGISTRY_SUFFIXES: &[&str] = &[".azurecr.io", ".azurecr.cn", ".azurecr.us"];
const BLOB_SUFFIXES: &[&str] = &[
    ".blob.core.windows.net",
    ".blob.core.chinacloudapi.cn",
    ".blob.core.usgovcloudapi.net",
];
const IDENTITY_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.windows.net",
    "login.microsoft.com",
    "sts.windows.net",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
];
const MANAGEMENT_HOSTS: &[&str] = &[
    "management.azure.com",
    "management.core.windows.net",
    "management.usgovcloudapi.net",
    "management.chinacloudapi.cn",
];

/// Classify `host` (without port; the caller strips it). `configured` lists registry hosts
/// named in the configuration, which count as REST endpoints whatever their domain; they are
/// compared case-insensitively and without trailing dots, schemes or ports.
pub fn classify(host: &str, configured: &[String]) -> Endpoint {
    let host = normalise(host);
    if configured.iter().any(|c| normalise_configured(c) == host) {
        let registry = strip_registry_suffix(&host)
            .filter(|name| is_label(name))
            .unwrap_or(&host)
            .to_string();
        return endpoint(EndpointKind::RegistryRest, Some(registry), None);
    }
    if host.parse::<IpAddr>().is_ok() {
        return Endpoint::default();
    }
    if let Some(rest) = strip_registry_suffix(&host) {
        return classify_registry_host(rest);
    }
    if BLOB_SUFFIXES
        .iter()
        .any(|s| host.strip_suffix(s).is_some_and(is_label))
    {
        return endpoint(EndpointKind::BlobStorage, None, None);
    }
    if IDENTITY_HOSTS.contains(&host.as_str()) {
        return endpoint(EndpointKind::Identity, None, None);
    }
    if MANAGEMENT_HOSTS.contains(&host.as_str()) {
        return endpoint(EndpointKind::Management, None, None);
    }
    Endpoint::default()
}

/// `rest` is the host without its `.azurecr.*` suffix.
fn classify_registry_host(rest: &str) -> Endpoint {
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.iter().any(|l| !is_label(l)) {
        return Endpoint::default();
    }
    let own = |s: &str| Some(s.to_string());
    match labels.as_slice() {
        [name] => endpoint(EndpointKind::RegistryRest, own(name), None),
        // The private-link CNAME target; a client that uses it directly still talks to REST.
        [name, "privatelink"] => endpoint(EndpointKind::RegistryRest, own(name), None),
        [name, region, "data"] => endpoint(EndpointKind::DataEndpoint, own(name), own(region)),
        [name, region, "data", "privatelink"] => {
            endpoint(EndpointKind::DataEndpoint, own(name), own(region))
        }
        // Regional endpoint of a geo-replica: a login server of its own.
        [name, region, "geo"] => endpoint(EndpointKind::RegistryRest, own(name), own(region)),
        _ => Endpoint::default(),
    }
}

fn endpoint(kind: EndpointKind, registry: Option<String>, region: Option<String>) -> Endpoint {
    Endpoint {
        kind,
        registry,
        region,
    }
}

fn strip_registry_suffix(host: &str) -> Option<&str> {
    REGISTRY_SUFFIXES
        .iter()
        .find_map(|s| host.strip_suffix(s))
        .filter(|rest| !rest.is_empty())
}

/// Lower case, without the root dot, and without IPv6 brackets.
fn normalise(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// A configured registry may be written as a URL or with a port: keep only the host.
fn normalise_configured(entry: &str) -> String {
    let entry = entry.trim();
    let entry = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let entry = entry.split('/').next().unwrap_or(entry);
    let host = if let Some(v6) = entry.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        match entry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => entry,
        }
    };
    normalise(host)
}

/// One DNS label of letters, digits and hyphens.
fn is_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Hints about a registry name as a user typed it (`docker login <name>`, an image reference's
/// host). Each hint is a stable id the diagnosis maps to advice:
///
/// * `empty`: nothing left after trimming;
/// * `surrounding_whitespace`: leading or trailing spaces;
/// * `has_scheme_or_path`: `https://…` or `…/repo` where a host is expected;
/// * `upper_case`: registry login servers are lower case;
/// * `missing_azurecr_suffix`: a single label like `myregistry` instead of the login server
///   `myregistry.azurecr.io`;
/// * `wrong_azurecr_suffix`: something like `myreg.azurecr.com` or `myreg.azurcr.io`;
/// * `data_endpoint_not_login_server`: a `<name>.<region>.data.azurecr.io` host used as the
///   login server;
/// * `acr_name_invalid_characters`: ACR names are letters and digits only;
/// * `acr_name_length`: ACR names are 5 to 50 characters;
/// * `invalid_host_characters`: characters no host name can contain.
pub fn registry_name_issues(host: &str) -> Vec<&'static str> {
    let mut issues = Vec::new();
    let trimmed = host.trim();
    if trimmed.is_empty() {
        issues.push("empty");
        return issues;
    }
    if trimmed.len() != host.len() {
        issues.push("surrounding_whitespace");
    }
    let mut name = trimmed;
    if let Some((_, rest)) = name.split_once("://") {
        issues.push("has_scheme_or_path");
        name = rest;
    }
    if let Some((h, _path)) = name.split_once('/') {
        if !issues.contains(&"has_scheme_or_path") {
            issues.push("has_scheme_or_path");
        }
        name = h;
    }
    // A port is legitimate for a registry host; judge the host part.
    if let Some((h, port)) = name.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            name = h;
        }
    }
    let name = name.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        issues.push("upper_case");
    }
    let lower = name.to_ascii_lowercase();
    if !lower
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        issues.push("invalid_host_characters");
    }
    if lower.is_empty() || lower.parse::<IpAddr>().is_ok() {
        return issues;
    }
    if !lower.contains('.') {
        if lower != "localhost" {
            issues.push("missing_azurecr_suffix");
        }
        return issues;
    }
    match strip_registry_suffix(&lower) {
        Some(rest) => {
            let labels: Vec<&str> = rest.split('.').collect();
            if labels.len() == 3 && labels[2] == "data" {
                issues.push("data_endpoint_not_login_server");
            }
            let acr_name = labels[0];
            if !acr_name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                issues.push("acr_name_invalid_characters");
            }
            if !(5..=50).contains(&acr_name.len()) {
                issues.push("acr_name_length");
            }
        }
        None => {
            if looks_like_azurecr_typo(&lower) {
                issues.push("wrong_azurecr_suffix");
            }
        }
    }
    issues
}

/// A host that was probably meant to end in `.azurecr.io`: a label close to `azurecr`, or
/// `azurecr` under the wrong top-level domain.
fn looks_like_azurecr_typo(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    labels.iter().skip(1).any(|l| {
        *l == "azurecr"
            || (l.starts_with("azur") && l.ends_with("cr"))
            || (l.len() >= 6 && edit_distance(l, "azurecr") <= 1)
    })
}

/// Levenshtein distance, for short labels only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<u8> = b.bytes().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(host: &str) -> Endpoint {
        classify(host, &[])
    }

    fn rest(name: &str, region: Option<&str>) -> Endpoint {
        endpoint(
            EndpointKind::RegistryRest,
            Some(name.into()),
            region.map(Into::into),
        )
    }

    #[test]
    fn registry_rest_endpoints() {
        assert_eq!(c("myregistry.azurecr.io"), rest("myregistry", None));
        assert_eq!(c("MyRegistry.AzureCR.io."), rest("myregistry", None));
        assert_eq!(c("  myregistry.azurecr.io  "), rest("myregistry", None));
        assert_eq!(c("contoso.azurecr.cn"), rest("contoso", None));
        assert_eq!(c("contoso.azurecr.us"), rest("contoso", None));
        assert_eq!(
            c("myregistry.privatelink.azurecr.io"),
            rest("myregistry", None)
        );
    }

    #[test]
    fn geo_endpoints_are_rest_with_region() {
        assert_eq!(
            c("myregistry.westeurope.geo.azurecr.io"),
            rest("myregistry", Some("westeurope"))
        );
    }

    #[test]
    fn data_endpoints() {
        let want = endpoint(
            EndpointKind::DataEndpoint,
            Some("myregistry".into()),
            Some("eastus2".into()),
        );
        assert_eq!(c("myregistry.eastus2.data.azurecr.io"), want);
        assert_eq!(c("MYREGISTRY.EASTUS2.DATA.AZURECR.IO."), want);
        assert_eq!(c("myregistry.eastus2.data.privatelink.azurecr.io"), want);
        assert_eq!(
            c("contoso.chinanorth3.data.azurecr.cn").kind,
            EndpointKind::DataEndpoint
        );
        assert!(c("myregistry.eastus2.data.azurecr.io").kind.is_data());
    }

    #[test]
    fn malformed_registry_hosts_are_other() {
        for host in [
            "azurecr.io",
            ".azurecr.io",
            "a..azurecr.io",
            "a.b.c.d.azurecr.io",
            ".westeurope.data.azurecr.io",
            "myreg.westeurope.data.azurecr.io.evil.example",
            "myreg_x.azurecr.io",
            "myregistry.azurecr.io.example.com",
            "myregistry.azurecr.com",
        ] {
            assert_eq!(c(host), Endpoint::default(), "{host}");
        }
    }

    #[test]
    fn blob_identity_management() {
        let blob = c("acrprodweu123.blob.core.windows.net");
        assert_eq!(blob.kind, EndpointKind::BlobStorage);
        assert_eq!(blob.registry, None);
        assert_eq!(blob.region, None);
        assert!(blob.kind.is_data());
        assert_eq!(
            c("ACCOUNT.blob.core.windows.net.").kind,
            EndpointKind::BlobStorage
        );
        assert_eq!(
            c("x.blob.core.usgovcloudapi.net").kind,
            EndpointKind::BlobStorage
        );
        assert_eq!(c("blob.core.windows.net").kind, EndpointKind::Other);
        assert_eq!(c("a.b.blob.core.windows.net").kind, EndpointKind::Other);
        assert_eq!(c("login.microsoftonline.com").kind, EndpointKind::Identity);
        assert_eq!(c("Login.Windows.Net.").kind, EndpointKind::Identity);
        assert_eq!(c("management.azure.com").kind, EndpointKind::Management);
        assert_eq!(c("registry-1.docker.io").kind, EndpointKind::Other);
        assert_eq!(c("").kind, EndpointKind::Other);
    }

    #[test]
    fn ip_literals_are_other() {
        for host in ["10.0.0.4", "127.0.0.1", "::1", "[2001:db8::1]", "fe80::1"] {
            assert_eq!(c(host), Endpoint::default(), "{host}");
        }
    }

    #[test]
    fn configured_registries_count_as_rest() {
        let configured = vec![
            "registry.internal.example".to_string(),
            "https://Harbor.Example.com:8443/".to_string(),
            "MyReg.azurecr.io".to_string(),
            "10.1.2.3:5000".to_string(),
        ];
        assert_eq!(
            classify("registry.internal.example.", &configured),
            rest("registry.internal.example", None)
        );
        assert_eq!(
            classify("harbor.example.com", &configured),
            rest("harbor.example.com", None)
        );
        assert_eq!(
            classify("myreg.azurecr.io", &configured),
            rest("myreg", None)
        );
        // An explicitly configured address wins over the IP-literal rule.
        assert_eq!(classify("10.1.2.3", &configured), rest("10.1.2.3", None));
        assert_eq!(classify("10.1.2.4", &configured).kind, EndpointKind::Other);
        assert_eq!(
            classify("other.example", &configured).kind,
            EndpointKind::Other
        );
    }

    #[test]
    fn kind_names() {
        assert_eq!(EndpointKind::DataEndpoint.as_str(), "data_endpoint");
        assert_eq!(
            serde_json::to_value(c("x.blob.core.windows.net")).unwrap()["kind"],
            "blob_storage"
        );
    }

    #[test]
    fn name_issues() {
        assert!(registry_name_issues("myregistry.azurecr.io").is_empty());
        assert!(registry_name_issues("myregistry.azurecr.io:443").is_empty());
        assert!(registry_name_issues("localhost").is_empty());
        assert!(registry_name_issues("localhost:5000").is_empty());
        assert!(registry_name_issues("registry-1.docker.io").is_empty());
        assert!(registry_name_issues("10.0.0.4:5000").is_empty());
        assert_eq!(
            registry_name_issues("myregistry"),
            vec!["missing_azurecr_suffix"]
        );
        assert_eq!(
            registry_name_issues("MyRegistry.azurecr.io"),
            vec!["upper_case"]
        );
        assert_eq!(
            registry_name_issues("https://myregistry.azurecr.io/"),
            vec!["has_scheme_or_path"]
        );
        assert_eq!(
            registry_name_issues("myregistry.azurecr.io/team/app"),
            vec!["has_scheme_or_path"]
        );
        assert_eq!(
            registry_name_issues(" myregistry.azurecr.io"),
            vec!["surrounding_whitespace"]
        );
        assert_eq!(
            registry_name_issues("my-registry.azurecr.io"),
            vec!["acr_name_invalid_characters"]
        );
        assert_eq!(
            registry_name_issues("acr.azurecr.io"),
            vec!["acr_name_length"]
        );
        assert_eq!(
            registry_name_issues("myregistry.westeurope.data.azurecr.io"),
            vec!["data_endpoint_not_login_server"]
        );
        for typo in [
            "myregistry.azurecr.com",
            "myregistry.azurcr.io",
            "myregistry.azureacr.io",
            "myregistry.azurecr.net",
        ] {
            assert_eq!(
                registry_name_issues(typo),
                vec!["wrong_azurecr_suffix"],
                "{typo}"
            );
        }
        assert_eq!(
            registry_name_issues("HTTPS://MYREG"),
            vec!["has_scheme_or_path", "upper_case", "missing_azurecr_suffix"]
        );
        assert_eq!(
            registry_name_issues("my reg.azurecr.io"),
            vec!["invalid_host_characters", "acr_name_invalid_characters"]
        );
        assert_eq!(registry_name_issues("   "), vec!["empty"]);
    }

    #[test]
    fn edit_distance_small_cases() {
        assert_eq!(edit_distance("azurecr", "azurecr"), 0);
        assert_eq!(edit_distance("azurcr", "azurecr"), 1);
        assert_eq!(edit_distance("azureacr", "azurecr"), 1);
        assert_eq!(edit_distance("docker", "azurecr"), 5);
    }
}

/// Properties of host classification: no host (any Unicode) panics it, case and the root dot
/// never matter, and every Azure host shape is read back with its registry and region.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::proptest_support::text_input;
    use proptest::prelude::*;

    const SEEDS: &[&str] = &[
        "myregistry.azurecr.io",
        "MYREGISTRY.EASTUS2.DATA.AZURECR.IO.",
        "myregistry.eastus2.data.privatelink.azurecr.io",
        "myregistry.westeurope.geo.azurecr.io",
        "acrprodweu123.blob.core.windows.net",
        "login.microsoftonline.com",
        "[2001:db8::1]",
        "https://Harbor.Example.com:8443/",
        "10.1.2.3:5000",
    ];

    /// A host spelt with each ASCII letter's case chosen at random.
    fn recase(host: &str, upper: &[bool]) -> String {
        host.chars()
            .zip(upper.iter().cycle())
            .map(|(c, &u)| {
                if u {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
    }

    proptest! {
        #![proptest_config(crate::proptest_support::cases(256))]

        #[test]
        fn never_panics(
            host in text_input(SEEDS),
            configured in prop::collection::vec(text_input(SEEDS), 0..4),
        ) {
            let e = classify(&host, &configured);
            if e.kind == EndpointKind::Other {
                prop_assert_eq!(e.region, None);
            }
            let _ = registry_name_issues(&host);
        }

        /// Host names are case-insensitive (RFC 4343), for the host and the configured list.
        #[test]
        fn case_does_not_matter(
            host in text_input(SEEDS),
            configured in prop::collection::vec(text_input(SEEDS), 0..3),
            upper in prop::collection::vec(any::<bool>(), 1..16),
        ) {
            let recased: Vec<String> = configured.iter().map(|c| recase(c, &upper)).collect();
            prop_assert_eq!(
                classify(&recase(&host, &upper), &recased),
                classify(&host, &configured)
            );
        }

        /// Every shape of an Azure registry host: kind, registry and region read back, in any
        /// case, with or without the root dot, in each cloud.
        #[test]
        fn azure_hosts_round_trip(
            name in label(),
            region in label(),
            shape in 0usize..5,
            cloud in prop::sample::select(REGISTRY_SUFFIXES),
            upper in prop::collection::vec(any::<bool>(), 1..16),
            root_dot in any::<bool>(),
        ) {
            let (host, want) = match shape {
                0 => (format!("{name}{cloud}"), endpoint(EndpointKind::RegistryRest, Some(name.clone()), None)),
                1 => (format!("{name}.privatelink{cloud}"), endpoint(EndpointKind::RegistryRest, Some(name.clone()), None)),
                2 => (format!("{name}.{region}.data{cloud}"), endpoint(EndpointKind::DataEndpoint, Some(name.clone()), Some(region.clone()))),
                3 => (format!("{name}.{region}.data.privatelink{cloud}"), endpoint(EndpointKind::DataEndpoint, Some(name.clone()), Some(region.clone()))),
                _ => (format!("{name}.{region}.geo{cloud}"), endpoint(EndpointKind::RegistryRest, Some(name.clone()), Some(region.clone()))),
            };
            let mut host = recase(&host, &upper);
            if root_dot {
                host.push('.');
            }
            prop_assert_eq!(classify(&host, &[]), want);
        }

        /// A well-formed login server has no issue; the same name mistyped in the usual ways
        /// gets the hint for it.
        #[test]
        fn login_server_hints(
            name in "[a-z][a-z0-9]{4,49}",
            cloud in prop::sample::select(REGISTRY_SUFFIXES),
            port in prop::option::of(any::<u16>()),
            junk in text_input(SEEDS),
        ) {
            let host = format!("{name}{cloud}");
            let with_port = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            prop_assert_eq!(registry_name_issues(&with_port), Vec::<&str>::new());
            prop_assert!(registry_name_issues(&host.to_ascii_uppercase()).contains(&"upper_case"));
            let url = format!("https://{host}/");
            prop_assert!(registry_name_issues(&url).contains(&"has_scheme_or_path"));
            let spaced = format!(" {host}");
            prop_assert!(registry_name_issues(&spaced).contains(&"surrounding_whitespace"));
            prop_assert_eq!(registry_name_issues(&name), vec!["missing_azurecr_suffix"]);
            let _ = registry_name_issues(&junk);
        }

        /// A configured registry matches whatever way it was written (URL, port, case).
        #[test]
        fn configured_hosts_match(
            labels in prop::collection::vec(label(), 2..4),
            scheme in prop::option::of(prop::sample::select(vec!["https://", "http://"])),
            port in prop::option::of(1u16..),
            path in prop::option::of("/[a-z/]{0,10}"),
            upper in prop::collection::vec(any::<bool>(), 1..16),
        ) {
            let host = labels.join(".");
            let written = format!(
                "{}{}{}{}",
                scheme.unwrap_or(""),
                recase(&host, &upper),
                port.map(|p| format!(":{p}")).unwrap_or_default(),
                path.unwrap_or_default()
            );
            let e = classify(&host, &[written]);
            prop_assert_eq!(e.kind, EndpointKind::RegistryRest);
        }
    }
}
