//! One shutdown signal for every task: SIGTERM or SIGINT flips a watch
//! channel; tasks select on [`Shutdown::wait`].

use tokio::sync::watch;

/// A cloneable handle that resolves once shutdown was requested.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side, for tests and for the signal listener.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// A new shutdown pair.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves when shutdown was requested (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means: stop.
        let _ = self.0.wait_for(|&stop| stop).await;
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// Fires `trigger` on the first SIGTERM or SIGINT.
pub async fn on_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "Shutting down: closing the current window");
        trigger.fire();
    });
    Ok(())
}
