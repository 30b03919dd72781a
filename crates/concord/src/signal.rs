//! Waiting for the "please stop" signals (Ctrl-C / SIGINT, and SIGTERM on Unix).

/// Resolves when the process is asked to stop; returns the signal's name for logs.
///
/// Both signals matter: Ctrl-C in a terminal, SIGTERM from service managers
/// and test harnesses. If a handler cannot be installed the other still works.
pub async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(e) => {
                tracing::warn!("cannot listen for Ctrl-C: {e}");
                std::future::pending().await
            }
        }
    };

    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                "SIGTERM"
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<&'static str>();

    tokio::select! {
        name = ctrl_c => name,
        name = term => name,
    }
}
