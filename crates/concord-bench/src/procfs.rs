//! CPU time and resident memory of a process, from Linux's `/proc`.

use std::time::Instant;

use anyhow::{Context, Result};

/// User plus system CPU time, in clock ticks, from the text of `/proc/PID/stat`.
///
/// The command name (field 2) is in parentheses and may hold spaces and `)`, so the
/// fields are counted from the last `)`: utime and stime are fields 14 and 15.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state), so field k is at index k - 3.
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    vm_rss_kib(&text).with_context(|| format!("no VmRSS in {path}"))
}

fn read_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    cpu_ticks(&text).with_context(|| format!("cannot parse {path}"))
}

/// The CPU a process uses over a window of wall time.
#[derive(Debug)]
pub struct CpuWindow {
    pid: u32,
    clk_tck: u64,
    ticks: u64,
    at: Instant,
}

impl CpuWindow {
    /// Starts a window on process `pid`; `clk_tck` is the kernel's `CLK_TCK` (`getconf CLK_TCK`).
    pub fn start(pid: u32, clk_tck: u64) -> Result<Self> {
        Ok(CpuWindow {
            pid,
            clk_tck,
            ticks: read_ticks(pid)?,
            at: Instant::now(),
        })
    }

    /// Cores used since the start: CPU seconds divided by wall seconds.
    pub fn cores(&self) -> Result<f64> {
        let ticks = read_ticks(self.pid)?.saturating_sub(self.ticks);
        let wall = self.at.elapsed().as_secs_f64();
        Ok(ticks as f64 / self.clk_tck as f64 / wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        // A command name with a space and a parenthesis, as the kernel writes it.
        let stat = "4242 (we(ird) name) S 1 4242 4242 0 -1 4194304 2315 0 0 0 157 42 0 0 20 0 9 0 123 1000 500";
        assert_eq!(cpu_ticks(stat), Some(157 + 42));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_line() {
        let status = "Name:\tconcord\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(vm_rss_kib(status), Some(51_234));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        // /proc of this very process: a local file, no network.
        let w = CpuWindow::start(std::process::id(), 100).unwrap();
        assert!(w.cores().unwrap() >= 0.0);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
