//! What a bench prints: one row per phase (ceilings and ours), the ratios of ours
//! to the matching ceiling, as a table or as one JSON object; and the peak
//! memory of this process per phase.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use time::OffsetDateTime;

/// The whole result of one bench run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub bench: &'static str,
    /// RFC 3339, UTC.
    pub date: String,
    pub machine: Machine,
    pub parameters: BTreeMap<&'static str, String>,
    /// Unit of `throughput` in every phase, e.g. `req/s`.
    pub unit: &'static str,
    pub phases: Vec<Phase>,
    pub ratios: Vec<Ratio>,
    pub notes: Vec<String>,
    /// Whether each phase's peak RSS is its own (the kernel's peak counter was
    /// reset at its start) rather than the process's peak so far.
    pub peak_rss_per_phase: bool,
    /// Print as JSON (`--json`).
    #[serde(skip)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: Option<String>,
}

impl Machine {
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            });
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
        }
    }
}

/// Whether a phase is a ceiling, our code, or a reference between them: a
/// bare program that does only part of our work, to show what that part costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ceiling,
    Ours,
    Reference,
}

/// One measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub role: Role,
    /// In the report's unit.
    pub throughput: f64,
    /// What the throughput counts (requests, rows, messages).
    pub count: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_200: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    pub peak_rss_mib: Option<f64>,
    /// Other figures of this phase (e.g. HTTP 200s per second next to rows per
    /// second).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<&'static str, f64>,
}

impl Phase {
    /// Every phase of `role` in `phases` as one, named `"{name}, all rounds"`:
    /// their counts over their summed seconds (every item of one role against
    /// every item of another, the figure to quote for several rounds).
    pub fn all_rounds(phases: &[Phase], role: Role, name: &str) -> Phase {
        let (count, seconds) = phases
            .iter()
            .filter(|p| p.role == role)
            .fold((0, 0.0), |(n, s), p| (n + p.count, s + p.seconds));
        Phase::new(format!("{name}, all rounds"), role, count, seconds)
    }

    pub fn new(name: impl Into<String>, role: Role, count: u64, seconds: f64) -> Phase {
        Phase {
            name: name.into(),
            role,
            throughput: count as f64 / seconds.max(1e-9),
            count,
            seconds,
            p50_ms: None,
            p99_ms: None,
            non_200: None,
            errors: None,
            peak_rss_mib: None,
            extra: BTreeMap::new(),
        }
    }
}

/// Ours divided by the ceiling, for one figure.
#[derive(Debug, Serialize)]
pub struct Ratio {
    /// e.g. `throughput`, `p99`.
    pub figure: &'static str,
    pub ours: String,
    pub ceiling: String,
    pub value: f64,
    /// `higher` (throughput) or `lower` (latency) is better.
    pub better: &'static str,
}

impl Ratio {
    pub fn throughput(ours: &Phase, ceiling: &Phase) -> Ratio {
        Ratio {
            figure: "throughput",
            ours: ours.name.clone(),
            ceiling: ceiling.name.clone(),
            value: ours.throughput / ceiling.throughput.max(1e-9),
            better: "higher",
        }
    }

    /// p50 and p99 (where both phases have them): ours / ceiling, lower is better.
    pub fn latencies(ours: &Phase, ceiling: &Phase) -> Vec<Ratio> {
        let pairs = [
            ("p50", ours.p50_ms, ceiling.p50_ms),
            ("p99", ours.p99_ms, ceiling.p99_ms),
        ];
        pairs
            .into_iter()
            .filter_map(|(figure, o, c)| {
                let (o, c) = (o?, c?);
                Some(Ratio {
                    figure,
                    ours: ours.name.clone(),
                    ceiling: ceiling.name.clone(),
                    value: o / c.max(1e-6),
                    better: "lower",
                })
            })
            .collect()
    }
}

impl Report {
    pub fn new(bench: &'static str, unit: &'static str, json: bool) -> Report {
        let date = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc())
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Report {
            bench,
            date,
            machine: Machine::this(),
            parameters: BTreeMap::new(),
            unit,
            phases: Vec::new(),
            ratios: Vec::new(),
            notes: Vec::new(),
            peak_rss_per_phase: true,
            json,
        }
    }

    pub fn param(&mut self, name: &'static str, value: impl ToString) {
        self.parameters.insert(name, value.to_string());
    }

    /// Adds a phase, noting whether its peak RSS was its own.
    pub fn push(&mut self, phase: Phase, own_peak: bool) {
        self.peak_rss_per_phase &= own_peak;
        self.phases.push(phase);
    }

    pub fn print(&self) {
        if self.json {
            // Our own types always serialise.
            println!("{}", serde_json::to_string(self).unwrap_or_default());
        } else {
            print!("{}", self.table());
        }
    }

    /// The human-readable form.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let params: Vec<String> = self
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "kyc-bench {} — {} — {} cores{} — {}",
            self.bench,
            self.date,
            self.machine.cores,
            self.machine
                .cpu
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            params.join(" ")
        );
        let _ = writeln!(out);
        let name_width = self
            .phases
            .iter()
            .map(|p| p.name.len() + 9)
            .max()
            .unwrap_or(10)
            .max(10);
        let _ = writeln!(
            out,
            "{:<name_width$} {:>10} {:>9} {:>7} {:>8} {:>8} {:>7} {:>6} {:>8}  other",
            "phase",
            self.unit,
            "count",
            "secs",
            "p50 ms",
            "p99 ms",
            "non-200",
            "errors",
            "peak MiB",
        );
        let dash = |o: Option<String>| o.unwrap_or_else(|| "-".to_owned());
        for p in &self.phases {
            let role = match p.role {
                Role::Ceiling => "ceiling:",
                Role::Ours => "ours:",
                Role::Reference => "reference:",
            };
            // Ratios (below 1) keep two decimals, small figures (CPU µs per
            // item) one.
            let extra: Vec<String> = p
                .extra
                .iter()
                .map(|(k, v)| {
                    if v.abs() < 1.0 && v.fract() != 0.0 {
                        format!("{k}={v:.2}")
                    } else if v.abs() < 100.0 && v.fract() != 0.0 {
                        format!("{k}={v:.1}")
                    } else {
                        format!("{k}={v:.0}")
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "{:<name_width$} {:>10.0} {:>9} {:>7.1} {:>8} {:>8} {:>7} {:>6} {:>8}  {}",
                format!("{role} {}", p.name),
                p.throughput,
                p.count,
                p.seconds,
                dash(p.p50_ms.map(|v| format!("{v:.2}"))),
                dash(p.p99_ms.map(|v| format!("{v:.2}"))),
                dash(p.non_200.map(|v| v.to_string())),
                dash(p.errors.map(|v| v.to_string())),
                dash(p.peak_rss_mib.map(|v| format!("{v:.1}"))),
                extra.join(" "),
            );
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "ratios (ours / ceiling):");
            for r in &self.ratios {
                let is_ours = self
                    .phases
                    .iter()
                    .any(|p| p.name == r.ours && p.role == Role::Ours);
                let flag = if is_ours && r.better == "higher" && r.value < 0.8 {
                    "  < 0.8 of the ceiling"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  {:<10} {} / {}: {:.2} ({} is better){flag}",
                    r.figure, r.ours, r.ceiling, r.value, r.better
                );
            }
        }
        if !self.peak_rss_per_phase {
            let _ = writeln!(
                out,
                "\npeak MiB is the process's peak so far (the kernel's peak counter could not be reset per phase)"
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

/// Peak resident memory of this process (load generator, ceilings and our code
/// all run in it).
pub mod memory {
    /// Resets the kernel's peak-RSS counter (`VmHWM`) so the next reading covers
    /// only what follows; `false` if the kernel refused.
    pub fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// `VmHWM` from `/proc/self/status`, in MiB.
    pub fn peak_mib() -> Option<f64> {
        peak_mib_at("/proc/self/status")
    }

    /// `VmHWM` of another process (`/proc/<pid>/status`), in MiB.
    pub fn process_peak_mib(pid: u32) -> Option<f64> {
        peak_mib_at(&format!("/proc/{pid}/status"))
    }

    fn peak_mib_at(path: &str) -> Option<f64> {
        let status = std::fs::read_to_string(path).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }

    /// Measures one phase's peak: call [`Peak::start`] before it and
    /// [`Peak::read`] after.
    #[derive(Debug, Clone, Copy)]
    pub struct Peak {
        pub own: bool,
    }

    impl Peak {
        pub fn start() -> Peak {
            Peak { own: reset_peak() }
        }

        pub fn read(self) -> Option<f64> {
            peak_mib()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_ratios() {
        let mut report = Report::new("intake", "req/s", false);
        report.param("duration", "10s");
        let mut bare = Phase::new("bare intake", Role::Ceiling, 20_000, 10.0);
        bare.p50_ms = Some(2.0);
        bare.p99_ms = Some(10.0);
        let mut ours = Phase::new("intake", Role::Ours, 10_000, 10.0);
        ours.p50_ms = Some(4.0);
        ours.p99_ms = Some(15.0);
        ours.extra.insert("x_paired", 0.43);
        ours.extra.insert("cpu_us", 14.25);
        report.ratios.push(Ratio::throughput(&ours, &bare));
        report.ratios.extend(Ratio::latencies(&ours, &bare));
        report.push(bare, true);
        report.push(ours, true);
        assert!((report.ratios[0].value - 0.5).abs() < 1e-9);
        assert!((report.ratios[1].value - 2.0).abs() < 1e-9);
        assert!((report.ratios[2].value - 1.5).abs() < 1e-9);
        let table = report.table();
        assert!(table.contains("ceiling: bare intake"), "{table}");
        assert!(table.contains("< 0.8 of the ceiling"), "{table}");
        // A ratio keeps two decimals, a CPU figure one.
        assert!(table.contains("x_paired=0.43"), "{table}");
        assert!(table.contains("cpu_us=14.2"), "{table}");
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["phases"][1]["role"], "ours");
        assert_eq!(json["ratios"][0]["better"], "higher");
    }

    #[test]
    fn peak_memory_is_readable_here() {
        let peak = memory::peak_mib();
        assert!(peak.is_some_and(|mib| mib > 0.0), "{peak:?}");
    }
}
