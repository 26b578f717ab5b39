//! The stages of a shutdown as every connection sees them: serving; draining (no new
//! connections, open ones may finish within `timeouts.shutdown_grace`); cut (the grace is
//! over: whatever is still open ends now and writes its `connection` record with
//! `close_reason = "shutdown"`, before the process exits and the log is flushed).

use tokio::sync::watch;

/// Where the server is in its shutdown. Stages only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Serving,
    Draining,
    Cut,
}

/// Moves the stage on; held by the server.
#[derive(Debug)]
pub struct Control(watch::Sender<Stage>);

/// Watches the stage; each connection holds a clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<Stage>);

/// A control and the first watcher of it.
pub fn channel() -> (Control, Shutdown) {
    let (tx, rx) = watch::channel(Stage::Serving);
    (Control(tx), Shutdown(rx))
}

impl Control {
    /// Stop accepting: open connections may finish.
    pub fn drain(&self) {
        self.advance(Stage::Draining);
    }

    /// The grace is over: open connections end now.
    pub fn cut(&self) {
        self.advance(Stage::Cut);
    }

    fn advance(&self, to: Stage) {
        self.0.send_if_modified(|s| {
            let later = to > *s;
            if later {
                *s = to;
            }
            later
        });
    }
}

impl Shutdown {
    /// Resolves once the server stops accepting.
    pub async fn draining(&mut self) {
        self.reached(Stage::Draining).await;
    }

    /// Resolves once the grace is over: the connection must end now and say why.
    pub async fn cut(&mut self) {
        self.reached(Stage::Cut).await;
    }

    async fn reached(&mut self, stage: Stage) {
        // A server that is gone can no longer say so: its end is the end of everything.
        let _ = self.0.wait_for(|s| *s >= stage).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    fn ready(f: impl Future<Output = ()>) -> bool {
        let mut f = pin!(f);
        f.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    #[test]
    fn stages_only_move_forward_and_a_gone_server_is_a_cut() {
        let (control, mut watcher) = channel();
        assert!(!ready(watcher.draining()));
        control.drain();
        assert!(ready(watcher.draining()));
        assert!(!ready(watcher.cut()));
        control.cut();
        control.drain();
        assert!(ready(watcher.cut()));
        let (control, mut watcher) = channel();
        drop(control);
        assert!(ready(watcher.cut()));
    }
}
