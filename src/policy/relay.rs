//! The open-relay rule: a proxy reachable from the network must not serve everyone.

use super::addr::{canonical_ip, covers_a_whole_family};
use ipnet::IpNet;
use std::net::SocketAddr;

/// Whether a configuration serves anyone who can reach its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// Loopback only, or restricted by client address or by authentication.
    Restricted,
    /// Any host that reaches the socket may use the proxy; the text says why.
    OpenRelay(String),
}

/// Judge `listen`, `allowed_clients` and whether `[auth]` is set.
pub fn exposure(listen: SocketAddr, allowed_clients: &[IpNet], auth: bool) -> Exposure {
    if canonical_ip(listen.ip()).is_loopback() || auth || !covers_a_whole_family(allowed_clients) {
        return Exposure::Restricted;
    }
    Exposure::OpenRelay(format!(
        "listen = {listen} is reachable from the network and allowed_clients admits every \
         address, with no [auth]: anyone who reaches it could use regdoc as an open proxy; \
         narrow allowed_clients to your clients' networks, or set [auth], or set \
         i_know_this_is_an_open_proxy = true"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn open_relay_needs_network_listen_everyone_and_no_auth() {
        let any = nets(&["0.0.0.0/0"]);
        let wide: SocketAddr = "0.0.0.0:3128".parse().unwrap();
        assert!(matches!(
            exposure(wide, &any, false),
            Exposure::OpenRelay(r) if r.contains("i_know_this_is_an_open_proxy")
        ));
        assert!(matches!(
            exposure("[::]:3128".parse().unwrap(), &nets(&["::/0"]), false),
            Exposure::OpenRelay(_)
        ));
        // Split into halves is still everyone.
        assert!(matches!(
            exposure(wide, &nets(&["0.0.0.0/1", "128.0.0.0/1"]), false),
            Exposure::OpenRelay(_)
        ));
        assert_eq!(exposure(wide, &any, true), Exposure::Restricted);
        assert_eq!(
            exposure(wide, &nets(&["172.17.0.0/16", "127.0.0.0/8"]), false),
            Exposure::Restricted
        );
        for lo in ["127.0.0.1:3128", "[::1]:3128", "[::ffff:127.0.0.1]:3128"] {
            assert_eq!(
                exposure(lo.parse().unwrap(), &any, false),
                Exposure::Restricted
            );
        }
    }
}
