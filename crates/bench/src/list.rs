//! `kyc-bench list`: pages of `GET /v3/submission` on a project of a million
//! stored rows (`docs/api.md` §15), and what the listing's indexes cost the
//! workers' batch insert.
//!
//! 1. Insert cost: the workers' own insert (`Store::store_batch`, 500 rows a
//!    batch) of the same number of rows without the two listing indexes
//!    (`submissions_list_idx`, `submissions_userid_idx`), then with them; and
//!    how long building them took.
//! 2. The project is filled to `--rows` the same way, then `VACUUM ANALYZE`.
//! 3. Pages of `--count` newest first, following `nextpageKey` from the first
//!    page down, through our intake over HTTP (and the store's query alone);
//!    p50/p99 per page. There is no ceiling to divide by here: the figure is
//!    absolute, judged against the 50 ms a page of 500 may take.

use crate::Common;
use crate::env::{BenchEnv, with_env};
use crate::ours::OurIntake;
use crate::record;
use crate::report::{Phase, Report, Role};
use kyc_config::Settings;
use kyc_store::DataKey;
use kyc_store::lifecycle::list::ListQuery;
use kyc_store::submissions::Outcome;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Rows of the project listed.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Rows inserted without and then with the listing indexes, to measure
    /// their cost (part of `--rows`).
    #[arg(long, default_value_t = 200_000)]
    pub insert_sample: u64,
    /// Items per page.
    #[arg(long, default_value_t = 500)]
    pub count: u64,
    /// Pages walked, each after the previous one.
    #[arg(long, default_value_t = 200)]
    pub pages: u64,
    #[command(flatten)]
    pub common: Common,
}

const INDEXES: [(&str, &str); 2] = [
    (
        "submissions_list_idx",
        "CREATE INDEX submissions_list_idx ON submissions \
         (project_id, date_trunc('milliseconds', received_at AT TIME ZONE 'UTC') DESC, id DESC) \
         WHERE status = 'accepted'",
    ),
    (
        "submissions_userid_idx",
        "CREATE INDEX submissions_userid_idx ON submissions (project_id, userid) \
         WHERE status = 'accepted' AND userid IS NOT NULL",
    ),
];

pub async fn run(settings: &Settings, args: ListArgs) -> anyhow::Result<Report> {
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("list", "pages/s", args.common.json);
        report.param("rows", args.rows);
        report.param("count", args.count);
        report.param("pages", args.pages);
        report.param("insert_sample", args.insert_sample);
        let key = DataKey::keyring(&env.settings.data_key()?, &env.settings.crypto.older_data_keys()?)?;
        let (project,): (Uuid,) = sqlx::query_as("SELECT id FROM projects LIMIT 1")
            .fetch_one(env.store.pool())
            .await?;
        let template = kyc_core::RawSubmission::from_slice(record::body().as_ref())?
            .validate(kyc_core::submission::today_utc())?;
        // Received over the last 30 days, one a few milliseconds after the other.
        let start = OffsetDateTime::now_utc() - time::Duration::days(30);
        let mut next = 0u64;
        let mut fill = async |n: u64| -> anyhow::Result<f64> {
            let started = Instant::now();
            let mut left = n;
            while left > 0 {
                let size = left.min(500);
                let batch: Vec<Outcome> = (0..size)
                    .map(|i| {
                        let k = next + i;
                        let mut submission = template.clone();
                        submission.userid = Some(format!("user-{k}"));
                        Outcome {
                            id: Uuid::now_v7(),
                            project_id: project,
                            received_at: start + time::Duration::milliseconds((k * 2) as i64),
                            idempotency_key: None,
                            result: Ok(submission),
                        }
                    })
                    .collect();
                env.store.store_batch(&batch, &key).await?;
                next += size;
                left -= size;
            }
            Ok(started.elapsed().as_secs_f64())
        };

        eprintln!("bench list: {} rows without the listing indexes …", args.insert_sample);
        for (name, _) in INDEXES {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
                .execute(env.store.pool())
                .await?;
        }
        let without = fill(args.insert_sample).await?;
        report.push(
            Phase::new("insert without listing indexes (rows/s)", Role::Ceiling, args.insert_sample, without),
            false,
        );
        let built = Instant::now();
        for (_, create) in INDEXES {
            sqlx::query(create).execute(env.store.pool()).await?;
        }
        let built = built.elapsed().as_secs_f64();
        eprintln!("bench list: {} rows with them …", args.insert_sample);
        let with = fill(args.insert_sample).await?;
        let mut phase = Phase::new("insert with listing indexes (rows/s)", Role::Ours, args.insert_sample, with);
        phase.extra.insert("index_build_ms", built * 1000.0);
        report.push(phase, false);

        let rest = args.rows.saturating_sub(2 * args.insert_sample);
        eprintln!("bench list: filling to {} rows …", args.rows);
        fill(rest).await?;
        sqlx::query("VACUUM ANALYZE submissions").execute(env.store.pool()).await?;

        eprintln!("bench list: {} pages of {} through the store …", args.pages, args.count);
        let mut latencies = Vec::with_capacity(args.pages as usize);
        let mut after = None;
        let started = Instant::now();
        for _ in 0..args.pages {
            let query = ListQuery {
                project_id: project,
                submission_id: None,
                userid: None,
                email: None,
                from: None,
                until: None,
                after,
                count: args.count as i64,
            };
            let t = Instant::now();
            let page = env.store.list_submissions(&query, &key).await?;
            latencies.push(t.elapsed());
            anyhow::ensure!(page.items.len() as u64 == args.count, "a short page");
            after = page.next;
        }
        report.push(phase_of("store: page query + opening sealed values", latencies, started.elapsed()), false);

        eprintln!("bench list: {} pages of {} over HTTP …", args.pages, args.count);
        let intake = OurIntake::start(env).await?;
        let client = reqwest::Client::new();
        let base = format!("http://{}/v3/submission", intake.addr);
        let mut latencies = Vec::with_capacity(args.pages as usize);
        let mut query = format!("count={}", args.count);
        let started = Instant::now();
        for _ in 0..args.pages {
            let t = Instant::now();
            let response = client
                .get(format!("{base}?{query}"))
                .header("x-api-key", &env.api_key)
                .send()
                .await?;
            anyhow::ensure!(response.status() == 200, "listing answered {}", response.status());
            let body: serde_json::Value = response.json().await?;
            latencies.push(t.elapsed());
            let items = body["Items"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(items as u64 == args.count, "a short page: {items}");
            let next = &body["nextpageKey"];
            query = format!(
                "count={}&nextpage_id={}&nextpage_date={}",
                args.count,
                next["id"].as_str().unwrap_or_default(),
                next["created_at"].as_str().unwrap_or_default()
            );
        }
        report.push(phase_of("HTTP: GET /v3/submission page", latencies, started.elapsed()), false);
        intake.stop().await?;

        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN SELECT id FROM submissions WHERE status = 'accepted' AND project_id = '{project}' \
             AND (date_trunc('milliseconds', received_at AT TIME ZONE 'UTC'), id) < (now() AT TIME ZONE 'UTC', '{}') \
             ORDER BY date_trunc('milliseconds', received_at AT TIME ZONE 'UTC') DESC, id DESC LIMIT 501",
            Uuid::max()
        )))
        .fetch_all(env.store.pool())
        .await?;
        report.notes.push(format!(
            "insert rows/s: the workers' batch insert (500 a batch, one connection); the listing \
             indexes cost {:.0}% of it; building both on {} rows took {:.0} ms",
            (1.0 - without / with) * 100.0,
            args.insert_sample,
            built * 1000.0
        ));
        report.notes.push(format!(
            "plan of a page: {}",
            plan.iter().map(|(l,)| l.trim()).collect::<Vec<_>>().join(" / ")
        ));
        Ok(report)
    })
    .await
}

fn phase_of(name: &str, mut latencies: Vec<Duration>, total: Duration) -> Phase {
    latencies.sort();
    let at = |q: f64| {
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1].as_secs_f64() * 1000.0
    };
    let mut phase = Phase::new(
        name,
        Role::Ours,
        latencies.len() as u64,
        total.as_secs_f64(),
    );
    phase.p50_ms = Some(at(0.50));
    phase.p99_ms = Some(at(0.99));
    phase.extra.insert(
        "max_ms",
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
    phase
}
