//! The demo's child processes: one `concord shop SERVICE` per instance, started,
//! watched, and stopped with SIGTERM (SIGKILL if it hangs).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use concord_shop::Service;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long an instance may take to print its listening line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an instance gets to deregister and drain after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// One running instance.
pub struct Child {
    /// Its service.
    pub service: Service,
    /// Its registry id.
    pub id: String,
    /// Its process id, for `kill` in the tour.
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    supervisor: JoinHandle<Option<ExitStatus>>,
}

impl Child {
    /// Starts `exe shop SERVICE ...` and waits for its listening line (which it
    /// prints once it serves and is registered).
    ///
    /// The child gets its own process group, so Ctrl-C in the terminal reaches
    /// only the demo, which then stops the children in order; and a stdin pipe
    /// with `--exit-with-parent`, so it exits even if the demo is killed by SIGKILL.
    pub async fn spawn(
        exe: &Path,
        service: Service,
        id: &str,
        server: &str,
        data_dir: &Path,
    ) -> anyhow::Result<Child> {
        let mut command = Command::new(exe);
        command
            .arg("shop")
            .arg(service.as_str())
            .args([
                "--server",
                server,
                "--listen",
                "127.0.0.1:0",
                "--instance-id",
                id,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--exit-with-parent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {id}"))?;
        let pid = child.id().with_context(|| format!("{id} exited at once"))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None) | Err(_)) => {
                let status = child.wait().await.ok();
                bail!("{id} exited before it was ready ({status:?}); its log is above");
            }
            Err(_) => bail!("{id} was not ready within {READY_TIMEOUT:?}"),
        };
        let addr = parse_listening(&line).with_context(|| format!("{id} printed {line:?}"))?;
        // Nothing more is expected on stdout, but a full pipe would block the child.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (stop, stopped) = oneshot::channel();
        let label = format!("{id} (pid {pid})");
        let supervisor = tokio::spawn(supervise(child, stdin, stopped, label));
        Ok(Child {
            service,
            id: id.to_owned(),
            pid,
            addr,
            stop,
            supervisor,
        })
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s). `None` if the
    /// status could not be read.
    pub async fn stop(self) -> Option<ExitStatus> {
        let _ = self.stop.send(());
        self.supervisor.await.ok().flatten()
    }
}

/// Waits for the child to exit on its own (logged: someone killed it, as the
/// tour suggests) or for the stop request.
async fn supervise(
    mut child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stop: oneshot::Receiver<()>,
    label: String,
) -> Option<ExitStatus> {
    tokio::select! {
        status = child.wait() => {
            tracing::warn!("{label} exited: {}", describe(&status));
            return status.ok();
        }
        _ = stop => {}
    }
    terminate(&child);
    let status = match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            tracing::warn!("{label} still running {STOP_TIMEOUT:?} after SIGTERM; killing it");
            let _ = child.kill().await;
            child.wait().await
        }
    };
    drop(stdin);
    tracing::info!("{label} stopped: {}", describe(&status));
    status.ok()
}

/// Sends SIGTERM (a kill on platforms without signals).
fn terminate(child: &tokio::process::Child) {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = child
            .id()
            .and_then(|pid| Pid::from_raw(i32::try_from(pid).ok()?));
        if let Some(pid) = pid
            && let Err(e) = kill_process(pid, Signal::TERM)
        {
            tracing::warn!(pid = pid.as_raw_pid(), "cannot send SIGTERM: {e}");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child.start_kill();
    }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The address in `shop SERVICE listening: http://ADDR id=ID pid=PID`.
fn parse_listening(line: &str) -> anyhow::Result<SocketAddr> {
    let rest = line
        .split_once(" listening: http://")
        .map(|(_, rest)| rest)
        .context("not a listening line")?;
    let addr = rest.split_whitespace().next().unwrap_or_default();
    addr.parse()
        .with_context(|| format!("bad address {addr:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_parses() {
        let addr = parse_listening("shop users listening: http://127.0.0.1:41234 id=users-1 pid=7")
            .unwrap();
        assert_eq!(addr, "127.0.0.1:41234".parse().unwrap());
        assert!(parse_listening("something else").is_err());
    }
}
