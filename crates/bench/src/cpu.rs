//! CPU time a phase cost, split by who spent it: this process (push, the load
//! generator and the services the bench runs in-process), PostgreSQL and
//! RabbitMQ. Read from `/proc`, so what an item costs shows even when the
//! machine's speed moves between runs, which moves throughput and its
//! ceilings alike.
//!
//! Each process's user and system time plus that of its reaped children (a
//! PostgreSQL backend that ends during a phase is counted in the
//! postmaster's). `/proc` counts in `USER_HZ`, 100 a second on Linux: 10 ms
//! steps, fine for phases of seconds.

use crate::report::Phase;

/// `/proc` time units per second (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks used so far, by whom.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    ours: u64,
    postgres: u64,
    rabbitmq: u64,
}

impl CpuTimes {
    /// The totals now.
    pub fn now() -> CpuTimes {
        let mut times = CpuTimes {
            ours: stat("/proc/self/stat").map_or(0, |(_, ticks)| ticks),
            ..CpuTimes::default()
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return times;
        };
        for entry in dir.flatten() {
            let is_pid = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            if !is_pid {
                continue;
            }
            match stat(entry.path().join("stat")) {
                Some((comm, ticks)) if comm == "postgres" => times.postgres += ticks,
                Some((comm, ticks)) if comm == "beam.smp" => times.rabbitmq += ticks,
                _ => {}
            }
        }
        times
    }

    /// Adds to `phase` the CPU microseconds per item each one spent from
    /// these times to `end`.
    pub fn record_until(&self, end: &CpuTimes, phase: &mut Phase, items: u64) {
        let per_item = |before: u64, after: u64| {
            after.saturating_sub(before) as f64 / TICKS_PER_SECOND * 1e6 / items.max(1) as f64
        };
        phase
            .extra
            .insert("cpu_us_ours", per_item(self.ours, end.ours));
        phase
            .extra
            .insert("cpu_us_postgres", per_item(self.postgres, end.postgres));
        phase
            .extra
            .insert("cpu_us_rabbitmq", per_item(self.rabbitmq, end.rabbitmq));
    }
}

/// A process's command name and its CPU ticks (utime, stime, cutime, cstime:
/// fields 14–17 of proc(5)).
fn stat(path: impl AsRef<std::path::Path>) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let comm = text.get(open + 1..close)?.to_owned();
    // After ") ": field 3 (the state) onwards.
    let fields: Vec<&str> = text.get(close + 2..)?.split(' ').collect();
    let mut ticks = 0u64;
    for field in 14..=17 {
        let value: i64 = fields.get(field - 3)?.parse().ok()?;
        ticks += u64::try_from(value).unwrap_or(0);
    }
    Some((comm, ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_and_its_work_counted() {
        let (comm, before) = stat("/proc/self/stat").expect("Linux has /proc/self/stat");
        assert!(!comm.is_empty());
        // Work until the count moves (a tick is 10 ms of CPU); on a busy
        // machine that takes longer, never forever.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let (_, now) = stat("/proc/self/stat").expect("still there");
            if now > before {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "30 s of work and the CPU count stayed at {before}"
            );
        }
    }
}
