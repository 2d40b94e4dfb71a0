//! `wrk` as an external load generator: a separate, tuned process, so the
//! server is measured without a generator in its own process taking CPU from it
//! (which hides server-side cost; the in-process generator is [`crate::load`]).
//!
//! `wrk` comes from Debian's `wrk` package. It posts the bench record with a Lua
//! script written to a temporary file, and its `--latency` output gives
//! requests/s, p50 and p99 and the count of non-2xx answers.

use crate::report::{Phase, Role};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

/// One `wrk` run's settings.
#[derive(Debug, Clone)]
pub struct WrkPlan {
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
}

/// The Lua script posting `body` with `api_key` (wrk's documented
/// `wrk.method`/`wrk.body`/`wrk.headers` globals).
fn script(api_key: &str, body: &[u8]) -> String {
    let lua_string = |s: &str| {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    format!(
        "wrk.method = \"POST\"\n\
         wrk.body = {}\n\
         wrk.headers[\"content-type\"] = \"application/json\"\n\
         wrk.headers[\"x-api-key\"] = {}\n",
        lua_string(&String::from_utf8_lossy(body)),
        lua_string(api_key)
    )
}

/// Runs `wrk` against `addr` (a warm-up run, then the measured one) and
/// returns the measured run as a phase.
pub async fn measure(
    plan: &WrkPlan,
    addr: SocketAddr,
    api_key: &str,
    name: &str,
    role: Role,
) -> anyhow::Result<Phase> {
    let dir = std::env::temp_dir().join(format!("kyc-bench-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script_path = dir.join("post.lua");
    std::fs::write(&script_path, script(api_key, &crate::record::body()))?;
    let url = format!("http://{addr}/v3/submission/migration");
    if !plan.warmup.is_zero() {
        run(plan, plan.warmup, &script_path, &url).await?;
    }
    let output = run(plan, plan.duration, &script_path, &url).await?;
    let _ = std::fs::remove_dir_all(&dir);
    parse(&output, name, role)
}

async fn run(
    plan: &WrkPlan,
    duration: Duration,
    script: &std::path::Path,
    url: &str,
) -> anyhow::Result<String> {
    let seconds = duration.as_secs_f64().ceil().max(1.0) as u64;
    let output = tokio::process::Command::new("wrk")
        .arg(format!("-t{}", plan.threads))
        .arg(format!("-c{}", plan.connections))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("running wrk ({e}): install it with `apt-get install wrk`"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "wrk exited with {}: {text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(text)
}

/// A phase from wrk's `--latency` report.
fn parse(output: &str, name: &str, role: Role) -> anyhow::Result<Phase> {
    let field = |prefix: &str| -> Option<&str> {
        output
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests: u64 = output
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(' ')?;
            rest.starts_with("requests in ").then(|| n.parse().ok())?
        })
        .ok_or_else(|| anyhow::anyhow!("no request count in wrk's output: {output}"))?;
    let seconds: f64 = output
        .lines()
        .find_map(|l| {
            let rest = l.split_once("requests in ")?.1;
            let d = rest.split(',').next()?;
            duration_ms(d.trim()).map(|ms| ms / 1000.0)
        })
        .ok_or_else(|| anyhow::anyhow!("no duration in wrk's output: {output}"))?;
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let errors: u64 = field("Socket errors:")
        .map(|s| {
            s.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let mut phase = Phase::new(name, role, requests.saturating_sub(non_2xx), seconds);
    phase.p50_ms = field("50%").and_then(duration_ms);
    phase.p99_ms = field("99%").and_then(duration_ms);
    phase.non_200 = Some(non_2xx);
    phase.errors = Some(errors);
    Ok(phase)
}

/// wrk's durations (`812.00us`, `1.23ms`, `2.00s`, `1.00m`) in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    let scale = match unit.trim() {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 10s test @ http://127.0.0.1:8080/v3/submission/migration
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.13ms    1.02ms  20.50ms   80.00%
    Req/Sec    12.50k   500.00    13.00k    70.00%
  Latency Distribution
     50%    4.98ms
     75%    5.50ms
     90%    6.10ms
     99%    9.87ms
  124567 requests in 10.01s, 30.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 67
Requests/sec:  12444.25
Transfer/sec:      3.00MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let phase = parse(OUTPUT, "intake", Role::Ours).expect("the sample parses");
        assert_eq!(phase.count, 124_567 - 67);
        assert!((phase.seconds - 10.01).abs() < 1e-9);
        assert_eq!(phase.p50_ms, Some(4.98));
        assert_eq!(phase.p99_ms, Some(9.87));
        assert_eq!(phase.non_200, Some(67));
        assert_eq!(phase.errors, Some(3));
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert_eq!(duration_ms("1.00m"), Some(60_000.0));
        assert_eq!(duration_ms("soon"), None);
    }

    #[test]
    fn the_script_escapes_the_body() {
        let lua = script("k\"ey", br#"{"a":"b\\c"}"#);
        assert!(lua.contains(r#"wrk.body = "{\"a\":\"b\\\\c\"}""#), "{lua}");
        assert!(
            lua.contains(r#"wrk.headers["x-api-key"] = "k\"ey""#),
            "{lua}"
        );
    }
}
