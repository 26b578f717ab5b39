//! Classification of a destination host: which part of a registry service it is.
//!
//! Pure functions: the diagnosis needs to know whether a failing host is a registry's REST
//! endpoint, one of its data endpoints, blob storage or an identity service, and which registry
//! and region it belongs to.

use serde::Serialize;

/// What kind of endpoint a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// `<name>.azurecr.io`, or a registry named in the configuration.
    RegistryRest,
    /// `<name>.<region>.data.azurecr.io`
    DataEndpoint,
    /// `*.blob.core.windows.net`
    BlobStorage,
    /// `login.microsoftonline.com` and other Entra ID hosts.
    Identity,
    /// `management.azure.com`
    Management,
    #[default]
    Other,
}

impl EndpointKind {
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
    /// Region of a data endpoint (`westeurope`).
    pub region: Option<String>,
}

/// Classify `host` (without port). `configured` lists registry hosts named in the
/// configuration, which count as REST endpoints whatever their domain.
pub fn classify(host: &str, configured: &[String]) -> Endpoint {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if configured.iter().any(|c| c.eq_ignore_ascii_case(&host)) {
        let registry = host
            .strip_suffix(".azurecr.io")
            .unwrap_or(&host)
            .to_string();
        return Endpoint {
            kind: EndpointKind::RegistryRest,
            registry: Some(registry),
            region: None,
        };
    }
    if let Some(rest) = host.strip_suffix(".data.azurecr.io") {
        if let Some((name, region)) = rest.split_once('.') {
            if !name.is_empty() && !region.is_empty() && !region.contains('.') {
                return Endpoint {
                    kind: EndpointKind::DataEndpoint,
                    registry: Some(name.to_string()),
                    region: Some(region.to_string()),
                };
            }
        }
    }
    if let Some(name) = host.strip_suffix(".azurecr.io") {
        if !name.is_empty() && !name.contains('.') {
            return Endpoint {
                kind: EndpointKind::RegistryRest,
                registry: Some(name.to_string()),
                region: None,
            };
        }
    }
    if host.ends_with(".blob.core.windows.net") {
        return Endpoint {
            kind: EndpointKind::BlobStorage,
            registry: None,
            region: None,
        };
    }
    if host == "login.microsoftonline.com" || host == "login.windows.net" {
        return Endpoint {
            kind: EndpointKind::Identity,
            registry: None,
            region: None,
        };
    }
    if host == "management.azure.com" {
        return Endpoint {
            kind: EndpointKind::Management,
            registry: None,
            region: None,
        };
    }
    Endpoint::default()
}
