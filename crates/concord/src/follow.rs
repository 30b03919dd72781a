//! Printing a watch stream until the user stops it.

use anyhow::bail;
use concord_client::{ClientError, WatchEvent};
use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::output::Output;
use crate::signal::shutdown_signal;

/// Prints each change (a JSON line with `--json`, else `line(event)`) until
/// Ctrl-C/SIGTERM (exit 0) or the stream breaks (an error).
pub async fn follow<E, S>(
    mut events: S,
    out: &mut Output,
    line: fn(&E) -> String,
) -> anyhow::Result<()>
where
    E: Serialize,
    S: Stream<Item = Result<WatchEvent<E>, ClientError>> + Unpin,
{
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            next = events.next() => match next {
                Some(Ok(WatchEvent::Change(event))) => {
                    if out.is_json() {
                        out.json_line(&event)?;
                    } else {
                        out.text(&line(&event))?;
                    }
                }
                Some(Ok(WatchEvent::Progress(_))) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("the server closed the watch stream"),
            },
        }
    }
}
