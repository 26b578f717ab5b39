//! Readiness for systemd (`Type=notify`).

use sd_notify::NotifyState;

/// The proxy listens and serves.
pub fn ready() {
    send(NotifyState::Ready);
}

/// The proxy drains and will exit.
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// Only when started by systemd. Errors are ignored: readiness is a courtesy, the proxy works
/// without it.
fn send(state: NotifyState) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let _ = sd_notify::notify(false, &[state]);
    }
}
