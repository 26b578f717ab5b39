//! The cause catalog, as data.
//!
//! Every cause regdoc can name: what it means, what the Docker client prints, how to confirm it
//! and how to fix it, with a link to the public article section that documents it. The rules in
//! [`super::rules`] point at these statics directly, so a misspelt id cannot compile.
//!
//! Facts come from the two ACR troubleshooting articles (network access, registry login) and the
//! research notes on what ACR, distribution, Go and dockerd send and print; the wording is ours.

use serde::Serialize;

/// Where a cause is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// "Troubleshoot network issues with registry".
    NetworkArticle,
    /// "Troubleshoot registry login".
    LoginArticle,
    /// Beyond the two articles: other ACR articles, distribution, dockerd, Go, regdoc itself.
    Beyond,
}

impl Source {
    /// Human label, as used by `regdoc explain`.
    pub fn label(self) -> &'static str {
        match self {
            Source::NetworkArticle => "network article",
            Source::LoginArticle => "login article",
            Source::Beyond => "beyond the articles",
        }
    }
}

/// A documented cause of a registry failure.
#[derive(Debug, Serialize)]
pub struct Cause {
    /// Stable snake_case id: users, dashboards and alerts rely on it. Never renamed.
    pub id: &'static str,
    pub title: &'static str,
    /// A few ASCII words for an HTTP reason phrase, e.g. "registry name does not resolve".
    pub short: &'static str,
    /// Concrete steps.
    pub remedy: &'static [&'static str],
    /// Public article URL with its section anchor.
    pub doc: &'static str,
    /// What the Docker client prints for this failure; `{host}` stands for the target host.
    /// [`super::symptom::client_symptom`] renders the concrete line for one failure.
    pub client_symptom: &'static str,
    /// How an operator confirms the cause by hand.
    pub how_to_confirm: &'static [&'static str],
    /// Whether regdoc, on the Docker host's path, can see this cause at all.
    pub observable: bool,
    pub source: Source,
}

/// A client-side firewall or proxy blocks the registry's REST endpoint.
pub static CLIENT_FIREWALL: Cause = Cause {
    id: "client_firewall",
    title: "A firewall or proxy on the client's path blocks the registry",
    short: "firewall blocks registry",
    remedy: &[
        "Allow outbound HTTPS (TCP 443) to the registry's REST endpoint <name>.azurecr.io, or to the AzureContainerRegistry service tag / its published IP ranges.",
        "Allow the data endpoints too: <name>.<region>.data.azurecr.io for every replica region when dedicated data endpoints are on, otherwise *.blob.core.windows.net.",
        "ACR serves a wildcard certificate: keep azurecr.io itself reachable so the handshake can complete.",
        "Behind an HTTPS proxy, configure both the Docker client and the Docker daemon for the proxy, and restart the daemon after changing its proxy settings.",
        "In Azure, review NSG rules, service tags and Azure Firewall egress rules for the source subnet.",
        "Run `az acr check-health --name <name> --ignore-errors` from the same host to compare.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-access#configure-client-firewall-access",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)",
    how_to_confirm: &[
        "From the Docker host: `curl -v https://<name>.azurecr.io/v2/` must answer 401 with a WWW-Authenticate header; a timeout or reset points at the path.",
        "Ask the network team whether <name>.azurecr.io and the data endpoint hosts are on the allow list.",
        "ContainerRegistryLoginEvents (registry resource logs) shows no attempt when the firewall drops the traffic before ACR.",
    ],
    observable: true,
    source: Source::NetworkArticle,
};

/// REST works but the data endpoint (layer downloads) is blocked.
pub static DATA_ENDPOINT_FIREWALL: Cause = Cause {
    id: "data_endpoint_firewall",
    title: "The registry's data endpoint is not allowed through the firewall",
    short: "data endpoint blocked",
    remedy: &[
        "Allow <name>.<region>.data.azurecr.io on TCP 443 for EVERY region the registry is replicated to; regdoc names the exact host and region that failed.",
        "Without dedicated data endpoints, layers come from *.blob.core.windows.net: allow it (or the storage account host regdoc names).",
        "Turning dedicated data endpoints on after the firewall was built for *.blob.core.windows.net breaks pulls until the new hosts are allowed.",
        "A registry with a private endpoint uses dedicated data endpoints automatically; each needs a DNS record too.",
        "If the daemon bypasses the proxy through NO_PROXY, list the data endpoint hosts there as well as the REST host.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-firewall-access-rules#enable-dedicated-data-endpoints",
    client_symptom: "Error response from daemon: Get \"https://{host}/...\": net/http: TLS handshake timeout (layer download fails after the manifest was fetched)",
    how_to_confirm: &[
        "`az acr show --name <name> --query dataEndpointHostNames` lists the hosts that must be allowed.",
        "`curl -v https://<name>.<region>.data.azurecr.io/` from the Docker host: it should complete a TLS handshake.",
        "regdoc logs a REST success for the same registry shortly before the data endpoint failure.",
    ],
    observable: true,
    source: Source::NetworkArticle,
};

/// The registry's own network rules refuse the client's public IP.
pub static PUBLIC_ACCESS_RULES: Cause = Cause {
    id: "public_access_rules",
    title: "The registry's public network rules do not allow this client",
    short: "registry firewall denies client IP",
    remedy: &[
        "See the registry's rules: `az acr show --name <name> --query networkRuleSet` (and `publicNetworkAccess`).",
        "Add the egress IP that ACR reported (regdoc quotes it) with `az acr network-rule add --name <name> --ip-address <ip>`, or allow the client's network.",
        "If public access is disabled on purpose, reach the registry through its private endpoint from inside the VNet.",
        "Rule changes can take a few minutes to take effect.",
        "With a service endpoint, disabling public network access also disables access through the service endpoint; IP rules never apply to private endpoints.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-access#configure-public-access-to-registry",
    client_symptom: "Error response from daemon: login attempt to https://{host}/v2/ failed with status: 403 Forbidden",
    how_to_confirm: &[
        "The registry answers 403 DENIED \"client with IP '<ip>' is not allowed access\"; compare that IP with the rules in networkRuleSet.",
        "`az acr check-health --name <name>` reports CONNECTIVITY_FORBIDDEN_ERROR.",
    ],
    observable: true,
    source: Source::NetworkArticle,
};

/// Private endpoint DNS: the registry name does not resolve to the private address.
pub static PRIVATE_ENDPOINT_DNS: Cause = Cause {
    id: "private_endpoint_dns",
    title: "DNS does not resolve the registry to its private endpoint",
    short: "private endpoint DNS wrong",
    remedy: &[
        "With a private endpoint, <name>.azurecr.io must resolve (via <name>.privatelink.azurecr.io) to the endpoint's private IP, and so must every data endpoint <name>.<region>.data.azurecr.io.",
        "Link the private DNS zone privatelink.azurecr.io to the VNet the client uses, and make sure it holds A records for the registry and for each replica's data endpoint (a new replica needs a new record).",
        "With custom DNS servers, forward azurecr.io (or privatelink.azurecr.io) to Azure DNS at 168.63.129.16 from inside the VNet.",
        "Verify with `dig <name>.azurecr.io` / `nslookup`: the chain must end in a private address.",
        "Run `az acr check-health --name <name> --vnet <vnet>` to compare DNS answers with the endpoint's NIC addresses.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-access#configure-vnet-access",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": dial tcp: lookup {host}: no such host",
    how_to_confirm: &[
        "`dig +short <name>.azurecr.io` from the Docker host: expect a CNAME to <name>.privatelink.azurecr.io and then a 10.x/172.16-31.x/192.168.x address.",
        "`az network private-endpoint show` lists the addresses the records must carry.",
    ],
    observable: true,
    source: Source::NetworkArticle,
};

/// The name resolves to a private endpoint address that this host cannot reach.
pub static PRIVATE_ENDPOINT_UNREACHABLE: Cause = Cause {
    id: "private_endpoint_unreachable",
    title: "The registry's private endpoint address is not reachable from this host",
    short: "private endpoint unreachable",
    remedy: &[
        "The host must be inside the VNet of the private endpoint, or in a peered / VPN / ExpressRoute-connected network with a route to it.",
        "Review the NSG rules and user-defined routes between the client subnet and the private endpoint subnet.",
        "Azure Bastion is not supported as a path to a registry private endpoint.",
        "If the host is outside Azure on purpose, use the public endpoint (and its IP rules) instead of the private DNS answer.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-access#configure-vnet-access",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": dial tcp 10.0.0.5:443: connect: no route to host",
    how_to_confirm: &[
        "`dig <name>.azurecr.io` shows the privatelink CNAME and a private address; `nc -vz <that address> 443` fails from this host.",
        "`az network private-endpoint show` confirms which VNet and subnet the endpoint lives in.",
    ],
    observable: true,
    source: Source::NetworkArticle,
};

/// An Azure service is blocked by the registry's network restrictions.
pub static AZURE_SERVICE_ACCESS: Cause = Cause {
    id: "azure_service_access",
    title: "An Azure service cannot reach the network-restricted registry",
    short: "azure service blocked",
    remedy: &[
        "Some Azure services (for example App Service, Container Instances, Defender image scanning) cannot reach a registry restricted by a private endpoint, service endpoint or IP rules.",
        "Allow trusted Azure services on the registry (`az acr update --name <name> --allow-trusted-services true`), or remove the network restriction.",
        "For AKS, run `az aks check-acr` to test the cluster's path to the registry.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-access#configure-service-access",
    client_symptom: "The Azure service reports a pull failure; no Docker client on this host is involved.",
    how_to_confirm: &[
        "The failing pull comes from an Azure service, not from a Docker host that uses regdoc.",
        "The registry's ContainerRegistryLoginEvents show the service's attempts being refused.",
    ],
    observable: false,
    source: Source::NetworkArticle,
};

/// Docker on this host is set up wrongly (version, daemon proxy settings, options).
pub static DOCKER_CONFIG: Cause = Cause {
    id: "docker_config",
    title: "Docker on this host is not configured correctly",
    short: "docker misconfigured",
    remedy: &[
        "Both the Docker CLI and the daemon must be running; the client must be version 18.03 or later (`docker version`).",
        "Set the daemon's proxy in a systemd drop-in (Environment=\"HTTPS_PROXY=http://<proxy>:3128\") or in daemon.json \"proxies\" (Engine 23.0+), then `systemctl daemon-reload && systemctl restart docker`; check with `systemctl show --property=Environment docker`.",
        "HTTPS_PROXY must normally start with http:// (the CONNECT is plain HTTP even for https:// registries).",
        "Configure the Docker client's proxy too (~/.docker/config.json \"proxies\") when builds or containers need it.",
        "On RHEL/Fedora docker builds, `--signature-verification=false` may be needed when pulls fail with `unauthorized: authentication required`.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login#check-docker-configuration",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": proxyconnect tcp: tls: first record does not look like a TLS handshake",
    how_to_confirm: &[
        "`docker version` shows client and server versions; `docker info` shows the HTTP/HTTPS proxy the daemon uses.",
        "`az acr check-health` reports DOCKER_COMMAND_ERROR, DOCKER_DAEMON_ERROR or DOCKER_VERSION_ERROR.",
    ],
    observable: true,
    source: Source::LoginArticle,
};

/// The daemon's proxy URL says https:// while regdoc speaks plain HTTP.
pub static PROXY_SCHEME_MISMATCH: Cause = Cause {
    id: "proxy_scheme_mismatch",
    title: "The daemon's HTTPS_PROXY uses https:// but the proxy speaks plain HTTP",
    short: "use http:// in HTTPS_PROXY",
    remedy: &[
        "Write the proxy URL with http:// in HTTPS_PROXY (e.g. HTTPS_PROXY=http://127.0.0.1:3128): the CONNECT request is sent in clear, the registry TLS runs inside the tunnel.",
        "Change it where the daemon reads it (systemd drop-in, daemon.json \"proxies\" or dockerd --https-proxy), then `systemctl daemon-reload && systemctl restart docker`.",
    ],
    doc: "https://docs.docker.com/engine/daemon/proxy/",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": proxyconnect tcp: tls: first record does not look like a TLS handshake",
    how_to_confirm: &[
        "`systemctl show --property=Environment docker` or daemon.json shows https:// in the proxy URL.",
        "regdoc saw a TLS ClientHello where an HTTP request line was expected.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// The daemon's NO_PROXY sends registry traffic around regdoc (and any corporate proxy).
pub static NO_PROXY_BYPASS: Cause = Cause {
    id: "no_proxy_bypass",
    title: "The daemon's NO_PROXY sends registry traffic around the proxy",
    short: "NO_PROXY bypasses proxy",
    remedy: &[
        "Remove from the daemon's NO_PROXY every entry that covers the registry, its data endpoints or blob storage (`.azurecr.io`, `azurecr.io`, `.windows.net`, `*.blob.core.windows.net`, `*`); keep `localhost,127.0.0.1` and internal hosts.",
        "Change it where the daemon reads it (systemd drop-in, daemon.json \"proxies\" \"no-proxy\"), then `systemctl daemon-reload && systemctl restart docker`.",
        "Go matches NO_PROXY by suffix: `.azurecr.io` and `azurecr.io` both cover every registry, `*` covers everything.",
    ],
    doc: "https://docs.docker.com/engine/daemon/proxy/",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": dial tcp: lookup {host}: no such host (or a timeout: the daemon connects directly, regdoc sees nothing)",
    how_to_confirm: &[
        "`systemctl show --property=Environment docker` and daemon.json \"proxies\" show the NO_PROXY the daemon uses.",
        "`regdoc doctor docker` names the entry that covers each registry host.",
        "regdoc's log has no connection record for the failing pull.",
    ],
    // The traffic goes around regdoc, so no rule can see it; `regdoc doctor docker` reads it
    // from the daemon's settings instead.
    observable: false,
    source: Source::Beyond,
};

/// The login server name is wrong or the registry does not exist.
pub static REGISTRY_NAME: Cause = Cause {
    id: "registry_name",
    title: "The registry does not exist or its name is wrong",
    short: "registry name does not resolve",
    remedy: &[
        "Use the full login server in lower case: `docker login <name>.azurecr.io`, and the same prefix in image references.",
        "With `az acr login`, pass the resource name without the domain: `az acr login --name <name>`.",
        "Registry names are 5 to 50 letters and digits, with no hyphens or underscores; check the spelling with `az acr list --query [].loginServer`.",
        "Check that the CLI and the host are on the right Azure cloud (sovereign clouds use other suffixes).",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login#specify-correct-registry-name",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": dial tcp: lookup {host}: no such host",
    how_to_confirm: &[
        "`nslookup <name>.azurecr.io` answers NXDOMAIN for a registry that does not exist.",
        "`az acr show --name <name>` fails with ResourceNotFound; `az acr check-health` reports CONNECTIVITY_DNS_ERROR.",
    ],
    observable: true,
    source: Source::LoginArticle,
};

/// The credentials presented are not valid.
pub static INVALID_CREDENTIALS: Cause = Cause {
    id: "invalid_credentials",
    title: "The registry credentials are not valid",
    short: "registry credentials invalid",
    remedy: &[
        "Service principal: the user name is the application (client) id and the password is its client secret, from the right tenant.",
        "Tokens from `az acr login --expose-token`: log in with the user name 00000000-0000-0000-0000-000000000000 and the token as password.",
        "Admin account: it must be enabled (`az acr update --name <name> --admin-enabled true`) and its current password used.",
        "Repository-scoped tokens: check the token name and that the password was not regenerated.",
        "Stale stored credentials also break anonymous pull: `docker logout <name>.azurecr.io` first.",
        "For AKS, Azure DevOps and other services, check the registry credentials configured in that service.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login#confirm-credentials-to-access-registry",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information.",
    how_to_confirm: &[
        "ContainerRegistryLoginEvents in the registry's resource logs show the failed identity and the caller IP.",
        "`az ad sp show --id <app-id>` confirms the service principal exists in the tenant.",
    ],
    observable: true,
    source: Source::LoginArticle,
};

/// The identity is valid but lacks the role for the operation.
pub static NOT_AUTHORIZED: Cause = Cause {
    id: "not_authorized",
    title: "The credentials are not authorized for this operation",
    short: "credentials lack permission",
    remedy: &[
        "Grant the identity AcrPull to pull or AcrPush to push (AcrDelete to delete): `az role assignment create --assignee <id> --role AcrPull --scope <registry-id>`.",
        "In \"RBAC Registry + ABAC Repository Permissions\" mode the Acr* roles do not count: assign Container Registry Repository Reader / Writer / Contributor.",
        "Repository-scoped tokens: add the repository and action to the token's scope map.",
        "Portal or ARM management needs at least the Reader role.",
        "Role changes can take up to about 10 minutes: `docker logout`, wait, then log in again.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login#confirm-credentials-are-authorized-to-access-registry",
    client_symptom: "Error response from daemon: denied: requested access to the resource is denied",
    how_to_confirm: &[
        "`az role assignment list --assignee <id> --scope <registry-id>` lists the identity's roles.",
        "regdoc quotes the token's granted actions next to the action the request needed.",
    ],
    observable: true,
    source: Source::LoginArticle,
};

/// A token or secret expired.
pub static EXPIRED_CREDENTIALS: Cause = Cause {
    id: "expired_credentials",
    title: "The credentials or token have expired",
    short: "credentials expired",
    remedy: &[
        "Microsoft Entra identities (user, managed identity, service principal): the registry token lives 3 hours; run `az acr login --name <name>` again.",
        "Expired service principal secret: the owner resets it with `az ad sp credential reset --id <app-id>` or creates a new service principal.",
        "Repository-scoped token: the registry owner regenerates the token password (`az acr token credential generate`).",
        "Long-running jobs should refresh the login before the 3-hour lifetime ends.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login#check-that-credentials-arent-expired",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information.",
    how_to_confirm: &[
        "regdoc shows the token's exp claim next to the time of the failure; for a token without exp, its age next to diagnosis.token_lifetime.",
        "`az ad sp credential list --id <app-id>` shows the secret's end date.",
    ],
    observable: true,
    source: Source::LoginArticle,
};

/// The corporate proxy regdoc chains to refused or failed.
pub static UPSTREAM_PROXY: Cause = Cause {
    id: "upstream_proxy",
    title: "The upstream (corporate) proxy refused or failed the connection",
    short: "upstream proxy failed",
    remedy: &[
        "Ask the proxy's owners to allow CONNECT to <name>.azurecr.io:443 and to each data endpoint <name>.<region>.data.azurecr.io:443 (or *.blob.core.windows.net).",
        "A 407 means the upstream proxy wants credentials: put them in regdoc's upstream.proxy URL (http://user:pass@host:port).",
        "Check that regdoc's upstream.proxy host and port are right and reachable; list hosts that must bypass it in upstream.no_proxy.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-access#configure-client-firewall-access",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": Bad Gateway",
    how_to_confirm: &[
        "`curl -v -x http://<upstream-proxy> https://<name>.azurecr.io/v2/` from the regdoc host reproduces the refusal.",
        "regdoc quotes the upstream proxy's status line.",
    ],
    observable: true,
    source: Source::NetworkArticle,
};

/// Something on the path presents its own certificates.
pub static TLS_INTERCEPTION: Cause = Cause {
    id: "tls_interception",
    title: "TLS to the registry is intercepted or altered on the path",
    short: "TLS intercepted on path",
    remedy: &[
        "A corporate proxy or firewall that inspects TLS must exempt <name>.azurecr.io and the data endpoints, or its CA must be trusted by the Docker daemon.",
        "Azure TLS endpoints chain to DigiCert Global Root G2 / Global Root CA, Baltimore CyberTrust Root, D-TRUST Root Class 3 CA 2 2009 or the Microsoft RSA/ECC Root CA 2017; any other issuer means something in between.",
        "To trust an inspecting CA per registry, place it at /etc/docker/certs.d/<host>/ca.crt (it is added to the system roots).",
        "`az acr check-health` reports CONNECTIVITY_SSL_ERROR in this situation.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-health-error-reference#connectivity_ssl_error",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": x509: certificate signed by unknown authority",
    how_to_confirm: &[
        "`openssl s_client -connect <name>.azurecr.io:443 -servername <name>.azurecr.io -showcerts` shows the issuer actually presented.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// The client refused a certificate that chains to a public root.
pub static CLIENT_TRUST_STORE: Cause = Cause {
    id: "client_trust_store",
    title: "The Docker host does not trust the public CA the registry's certificate chains to",
    short: "client trust store lacks root",
    remedy: &[
        "Install or update the CA bundle on the Docker host (`ca-certificates` on Debian and Ubuntu, `ca-certificates` plus `update-ca-trust` on RHEL), then restart the Docker daemon so it reloads the roots.",
        "A daemon in a minimal image or a snap may read its own bundle: check which file it uses and that it holds the DigiCert, Baltimore or Microsoft roots Azure chains to.",
        "A ca.crt under /etc/docker/certs.d/<host>/ is added to the system roots; remove a stale or wrong one there if the host's bundle is fine.",
    ],
    doc: "https://learn.microsoft.com/azure/security/fundamentals/azure-ca-details",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": x509: certificate signed by unknown authority",
    how_to_confirm: &[
        "`openssl s_client -connect <name>.azurecr.io:443 -servername <name>.azurecr.io` on the Docker host reports `Verify return code: 20` or `21` although regdoc found the chain valid.",
        "`ls -l /etc/ssl/certs | wc -l` on the Docker host: an empty or tiny store is the fault.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// The server presents a certificate outside its validity dates.
pub static REGISTRY_CERTIFICATE: Cause = Cause {
    id: "registry_certificate",
    title: "The server presents a certificate that has expired or is not valid yet",
    short: "server certificate out of date",
    remedy: &[
        "If the local clock is right (`timedatectl status`), the server's certificate is out of date: its owners must renew it. A registry behind your own endpoint (a gateway, a custom domain) is yours to renew.",
        "For an Azure endpoint, check Azure status and retry: Azure renews its certificates before they expire.",
    ],
    doc: "https://learn.microsoft.com/azure/security/fundamentals/azure-ca-details",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": x509: certificate has expired or is not yet valid",
    how_to_confirm: &[
        "`openssl s_client -connect <host>:443 -servername <host> </dev/null | openssl x509 -noout -dates` shows notBefore and notAfter; compare them with `date -u`.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// The Docker daemon refused regdoc's own interception certificate.
pub static INTERCEPT_CA_UNTRUSTED: Cause = Cause {
    id: "intercept_ca_untrusted",
    title: "The client does not trust regdoc's interception CA",
    short: "regdoc CA not trusted",
    remedy: &[
        "Copy regdoc's CA certificate to /etc/docker/certs.d/<host>/ca.crt for every intercepted registry host (no daemon restart needed).",
        "Or stop intercepting this host: remove it from intercept.hosts or add it to intercept.passthrough.",
    ],
    doc: "https://docs.docker.com/engine/security/certificates/",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
    how_to_confirm: &[
        "`ls /etc/docker/certs.d/<host>/` on the Docker host must show ca.crt with regdoc's CA.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// ACR throttled the client.
pub static THROTTLED: Cause = Cause {
    id: "throttled",
    title: "The registry is throttling requests (HTTP 429)",
    short: "registry throttling",
    remedy: &[
        "Wait and retry: the limits depend on the service tier (ReadOps/WriteOps per minute).",
        "Lower the daemon's max-concurrent-downloads / max-concurrent-uploads, reduce the number of layers, or spread pulls over time.",
        "Consider a higher tier (Premium) or geo-replicas close to the clients.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-performance#review-configured-limits",
    client_symptom: "Error response from daemon: toomanyrequests: too many requests",
    how_to_confirm: &[
        "regdoc quotes the 429 and the TOOMANYREQUESTS code; the registry's metrics show high request counts.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// The registry answered with a server error.
pub static REGISTRY_ERROR: Cause = Cause {
    id: "registry_error",
    title: "The registry service answered with an error or did not answer",
    short: "registry service error",
    remedy: &[
        "Retry later; check Azure status for Container Registry in the region.",
        "If it persists, open an issue at https://aka.ms/acr/issues with the X-Ms-Correlation-Request-Id regdoc logged.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-health-error-reference#connectivity_challenge_error",
    client_symptom: "Error response from daemon: received unexpected HTTP status: 503 Service Unavailable",
    how_to_confirm: &["`az acr check-health --name <name>` from another network."],
    observable: true,
    source: Source::Beyond,
};

/// The host's clock is wrong.
pub static CLOCK_SKEW: Cause = Cause {
    id: "clock_skew",
    title: "The host's clock is off, so certificates or tokens look invalid",
    short: "clock skew",
    remedy: &[
        "Synchronise the clock (`timedatectl status`, enable NTP / chrony), then log in again.",
        "Certificates and registry tokens carry validity times; a skewed clock makes them look expired or not yet valid.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login#check-that-credentials-arent-expired",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": x509: certificate has expired or is not yet valid",
    how_to_confirm: &[
        "Compare `date -u` on the host with the Date header of `curl -sI https://<name>.azurecr.io/v2/`.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// The repository or tag does not exist.
pub static NOT_FOUND: Cause = Cause {
    id: "not_found",
    title: "The repository, tag or blob does not exist in the registry",
    short: "image not found",
    remedy: &[
        "Check the repository and tag: `az acr repository show-tags --name <name> --repository <repo>`.",
        "ACR may answer 401 \"authentication required\" instead of 404 for a repository or tag that does not exist (or a dangling tag).",
        "Repository names use lower-case letters, digits and . - _ / only.",
        "Check that the image was pushed to this registry (and, for geo-replicas, that replication has finished).",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login#specify-correct-registry-name",
    client_symptom: "Error response from daemon: manifest unknown: manifest unknown",
    how_to_confirm: &[
        "`az acr repository show --name <name> --image <repo>:<tag>`.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// Data stopped flowing mid-transfer.
pub static TRANSFER_STALLED: Cause = Cause {
    id: "transfer_stalled",
    title: "A transfer stalled: data flowed and then stopped",
    short: "transfer stalled",
    remedy: &[
        "Check the network speed to Azure storage and the image size against the tier's bandwidth.",
        "A path MTU problem (VPN, tunnel) can freeze large transfers while small requests work: test with a lower MTU.",
        "Inspecting middleboxes with size or time limits can cut long downloads; exempt the data endpoints.",
        "Compare with a pull from another registry from the same host.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-performance#check-expected-network-speed",
    client_symptom: "The pull stalls on a layer and fails after retries, e.g. `error pulling image configuration: download failed after attempts=6: unexpected EOF`",
    how_to_confirm: &[
        "regdoc reports the bytes moved before the stall and how long the connection stayed idle.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// Push split across two nearby replicas.
pub static GEO_REPLICATION: Cause = Cause {
    id: "geo_replication",
    title: "A geo-replicated push landed in two different replicas",
    short: "geo replica split push",
    remedy: &[
        "Push from a host whose nearest replica is stable: put a replica in the pusher's region.",
        "Temporarily disable Traffic Manager routing to one of the two nearby replicas during pushes (`az acr replication update --region-endpoint-enabled false`).",
        "Use `nslookup <name>.azurecr.io` to see which replica DNS chooses.",
    ],
    doc: "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-performance#configure-geo-replicated-registry",
    client_symptom: "Error response from daemon: manifest blob unknown: blob unknown to registry",
    how_to_confirm: &["The layer upload and the manifest PUT resolved to different regions."],
    observable: true,
    source: Source::Beyond,
};

/// regdoc refused the request by its own policy.
pub static PROXY_POLICY: Cause = Cause {
    id: "proxy_policy",
    title: "regdoc refused the request by its own policy",
    short: "refused by proxy policy",
    remedy: &[
        "Port not allowed: add the port to allowed_ports in regdoc's configuration, or use the registry's standard port 443.",
        "Client not allowed: add the client's network to allowed_clients.",
        "Connection limit (429 Too Many Requests): the client already holds max_connections_per_client connections to regdoc. Raise the setting if that client really needs more at once (a build host serving many parallel pulls, a CI runner), or find what keeps so many open.",
        "Proxy authentication: put the user and password in the daemon's proxy URL (http://user:pass@host:3128) and restart the daemon.",
        "Destination not allowed: the name or address is refused by denied_destinations (by default link-local and cloud metadata addresses, loopback, and regdoc's own listen address). If the destination is legitimate (a registry on this host, say), add a more specific entry for it to allowed_destinations.",
        "Interception refused a name (the client got a TLS alert, `unrecognized name`): regdoc presents certificates only for the host of the CONNECT request, and only for names its CA's name constraints permit; fix the client's server name, or make a CA that permits the host (`regdoc ca init --force --permit <host>`) and trust it again.",
    ],
    doc: "https://docs.docker.com/engine/daemon/proxy/",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": Forbidden",
    how_to_confirm: &["regdoc's failure record names the rule (port, client address, destination rule, authentication, connection limit, or the name interception refused)."],
    observable: true,
    source: Source::Beyond,
};

/// regdoc ran out of file descriptors: its own limit, not the network.
pub static REGDOC_RESOURCE_LIMIT: Cause = Cause {
    id: "regdoc_resource_limit",
    title: "regdoc ran out of file descriptors",
    short: "regdoc out of file descriptors",
    remedy: &[
        "Every tunnel costs regdoc two descriptors (more while it moves bulk data through a kernel pipe). Raise its limit: LimitNOFILE=65536 in the [Service] section of regdoc.service (or a drop-in), then `systemctl daemon-reload` and restart regdoc.",
        "Run by hand: `ulimit -n 65536` in the shell before `regdoc run` (up to the hard limit; raising that needs root or /etc/security/limits.conf).",
        "Or lower max_connections so that twice its value stays well under the limit.",
        "ENFILE means the whole system's file table is full: raise fs.file-max (sysctl) and look for the process holding the descriptors.",
    ],
    doc: "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": Service Unavailable",
    how_to_confirm: &[
        "The failure record names the error (EMFILE: regdoc's own limit, ENFILE: the system's) and regdoc's soft and hard RLIMIT_NOFILE.",
        "`grep 'open files' /proc/$(pidof regdoc)/limits` shows the limit; `ls /proc/$(pidof regdoc)/fd | wc -l` how many are in use.",
        "Nothing left the host: the registry and the network never saw the attempt.",
    ],
    observable: true,
    source: Source::Beyond,
};

/// The client sent something regdoc could not read as a proxy request.
pub static BAD_CLIENT_REQUEST: Cause = Cause {
    id: "bad_client_request",
    title: "The client sent a request regdoc could not read",
    short: "malformed proxy request",
    remedy: &[
        "Point the client at regdoc as an HTTP proxy (HTTPS_PROXY=http://<regdoc>:3128), not as a registry mirror or a plain web server.",
        "A request head that arrives too slowly or too large usually means a scanner or a non-proxy client; check the client address in the record.",
    ],
    doc: "https://docs.docker.com/engine/daemon/proxy/",
    client_symptom: "Error response from daemon: Get \"https://{host}/v2/\": Bad Request",
    how_to_confirm: &["regdoc's failure record names the client address and what was wrong with the request."],
    observable: true,
    source: Source::Beyond,
};

/// Every cause regdoc knows, in catalog order.
pub static CAUSES: &[&Cause] = &[
    &CLIENT_FIREWALL,
    &DATA_ENDPOINT_FIREWALL,
    &PUBLIC_ACCESS_RULES,
    &PRIVATE_ENDPOINT_DNS,
    &PRIVATE_ENDPOINT_UNREACHABLE,
    &AZURE_SERVICE_ACCESS,
    &DOCKER_CONFIG,
    &PROXY_SCHEME_MISMATCH,
    &NO_PROXY_BYPASS,
    &REGISTRY_NAME,
    &INVALID_CREDENTIALS,
    &NOT_AUTHORIZED,
    &EXPIRED_CREDENTIALS,
    &UPSTREAM_PROXY,
    &TLS_INTERCEPTION,
    &INTERCEPT_CA_UNTRUSTED,
    &CLIENT_TRUST_STORE,
    &REGISTRY_CERTIFICATE,
    &THROTTLED,
    &REGISTRY_ERROR,
    &CLOCK_SKEW,
    &NOT_FOUND,
    &TRANSFER_STALLED,
    &GEO_REPLICATION,
    &PROXY_POLICY,
    &REGDOC_RESOURCE_LIMIT,
    &BAD_CLIENT_REQUEST,
];

/// Look a cause up by id.
pub fn by_id(id: &str) -> Option<&'static Cause> {
    CAUSES.iter().copied().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const NET: &str =
        "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-access";
    const LOGIN: &str =
        "https://learn.microsoft.com/azure/container-registry/container-registry-troubleshoot-login";

    const REQUIRED: &[&str] = &[
        "client_firewall",
        "data_endpoint_firewall",
        "public_access_rules",
        "private_endpoint_dns",
        "private_endpoint_unreachable",
        "azure_service_access",
        "docker_config",
        "registry_name",
        "invalid_credentials",
        "not_authorized",
        "expired_credentials",
        "upstream_proxy",
        "tls_interception",
        "throttled",
        "registry_error",
        "clock_skew",
        "not_found",
        "transfer_stalled",
    ];

    #[test]
    fn catalog_has_every_required_id() {
        for id in REQUIRED {
            assert!(by_id(id).is_some(), "missing cause {id}");
        }
    }

    #[test]
    fn ids_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for c in CAUSES {
            assert!(seen.insert(c.id), "duplicate id {}", c.id);
            assert!(c.id.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        }
    }

    #[test]
    fn every_cause_is_complete() {
        for c in CAUSES {
            assert!(!c.title.is_empty(), "{}", c.id);
            assert!(!c.remedy.is_empty(), "{}", c.id);
            assert!(!c.how_to_confirm.is_empty(), "{}", c.id);
            assert!(c.doc.starts_with("https://"), "{}", c.id);
            assert!(!c.client_symptom.is_empty(), "{}", c.id);
            // Reason phrases travel in an HTTP status line: ASCII printable, short.
            assert!(c.short.len() <= 40, "{}", c.id);
            assert!(
                c.short.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{}",
                c.id
            );
        }
    }

    #[test]
    fn article_causes_link_their_section() {
        for c in CAUSES {
            match c.source {
                // The data endpoint cause links the firewall rules article the network article
                // points to for dedicated data endpoints.
                Source::NetworkArticle if c.id == "data_endpoint_firewall" => {
                    assert!(c.doc.ends_with("#enable-dedicated-data-endpoints"))
                }
                Source::NetworkArticle => {
                    assert!(c.doc.starts_with(NET), "{}", c.id);
                    assert!(c.doc.contains("#configure-"), "{}", c.id);
                }
                Source::LoginArticle => assert!(c.doc.starts_with(LOGIN), "{}", c.id),
                _ => {}
            }
        }
    }

    #[test]
    fn no_proxy_bypass_is_a_daemon_setting_cause() {
        let c = by_id("no_proxy_bypass").unwrap();
        assert_eq!(c.source, Source::Beyond);
        assert!(!c.observable);
        assert!(c
            .remedy
            .iter()
            .any(|r| r.contains("systemctl restart docker")));
        assert!(c.client_symptom.contains("{host}"));
    }

    #[test]
    fn only_service_access_and_no_proxy_bypass_are_unobservable() {
        let hidden: Vec<_> = CAUSES
            .iter()
            .filter(|c| !c.observable)
            .map(|c| c.id)
            .collect();
        assert_eq!(hidden, vec!["azure_service_access", "no_proxy_bypass"]);
    }
}
