//! Past one broker: a three-node RabbitMQ cluster of the test's own (never the
//! shared broker), two `kyc-intake` and two `kyc-worker` processes connected to
//! different nodes, each given every node's address, and a 50,000-record
//! `kycctl push` with HTTP load running; then the node hosting the submissions
//! queue's leader goes away — stopped cleanly here, SIGKILLed in
//! `broker_sigkill`. The leader moves to a surviving node; clients of the lost
//! node reconnect to the next address. Outcome: the push exits 0 with one result
//! per line, every HTTP 200 is stored, nothing is stored twice (counted by
//! userid, the business key), the intakes answer only 200 or 503 with
//! `Retry-After`; the test prints how long ingestion paused.
//!
//! A second test restarts a stopped node and checks that it rejoins and the
//! queue is replicated on three nodes again.

use crate::support::{Cluster, Intakes, Workers, ensure_pg_up, results_by_line};
use kyc_bus::{ConfirmChannel, Outgoing, Topology, persistent};
use kyc_cli::push::{self, ResultLine};
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const RECORDS: usize = 50_000;
const CLIENTS: usize = 8;
/// Pushed records stored before the fault: the push is well under way.
const ROWS_BEFORE_FAULT: i64 = (RECORDS / 5) as i64;
/// HTTP 200s before the fault.
const OKS_BEFORE_FAULT: usize = 100;

/// How the leader's node goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `rabbitmqctl stop`: a clean shutdown.
    Stop,
    /// SIGKILL of the node's Erlang VM (`beam.smp`), then a restart.
    Kill,
}

/// One HTTP request as a client saw it; times since the test's start.
#[derive(Debug, Clone)]
struct Attempt {
    /// Which intake answered (0: the one that began with the leader's node).
    intake: usize,
    answered: Duration,
    status: u16,
    error_code: Option<String>,
    retry_after: Option<String>,
    /// The record's userid, also its idempotency key.
    userid: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault test: a RabbitMQ cluster of its own under load; run by scripts/test with --ignored --test-threads=1"]
async fn cluster_leader_node_stopped_under_load() {
    failover_under_load(Fault::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault test: a RabbitMQ cluster of its own; run by scripts/test with --ignored --test-threads=1"]
async fn cluster_stopped_node_restarts_and_rejoins() {
    const MESSAGES: usize = 1_000;
    let mut cluster = Cluster::start(3).await;
    let topology = Topology::new(format!("rejoin{}", Uuid::now_v7().simple()));
    let queue = topology.submissions_queue();
    let exchange = topology.submissions_exchange();

    let publish = |urls: String, from: usize| {
        let (topology, exchange) = (topology.clone(), exchange.clone());
        async move {
            let connection = kyc_bus::connect(&urls, "kyc-tests-rejoin")
                .await
                .expect("a node answers");
            topology.ensure(&connection).await.expect("the topology");
            let channel = ConfirmChannel::open(&connection, Duration::from_secs(30))
                .await
                .expect("a confirm channel");
            for i in from..from + MESSAGES {
                let payload = format!("{{\"n\":{i}}}");
                channel
                    .publish(Outgoing {
                        exchange: &exchange,
                        routing_key: kyc_core::wire::SUBMISSION_ROUTING_KEY,
                        payload: payload.as_bytes(),
                        properties: persistent(),
                        mandatory: true,
                    })
                    .await
                    .unwrap_or_else(|e| panic!("publish {i}: {e}"));
            }
            let _ = connection.close(200, "bye".into()).await;
        }
    };
    publish(cluster.urls_from(0), 0).await;
    let before = replicas_where(&cluster, &queue, "on three nodes", |q| {
        q.members.len() == 3 && q.online.len() == 3 && q.messages == MESSAGES as u64
    })
    .await;
    let stopped = cluster
        .index_of(&before.leader)
        .expect("the leader is ours");
    let survivor = (stopped + 1) % 3;

    let t0 = Instant::now();
    cluster.stop(stopped).await;
    let stop_took = t0.elapsed();
    let moved = replicas_where(&cluster, &queue, "a new leader", |q| {
        q.leader != before.leader && q.online.len() == 2
    })
    .await;
    let election = t0.elapsed();
    // Published while the node is away: the restarted member must catch up.
    publish(cluster.urls_from(survivor), MESSAGES).await;

    let restart_began = Instant::now();
    cluster.restart(stopped).await;
    let booted = restart_began.elapsed();
    let after = replicas_where(&cluster, &queue, "three online members again", |q| {
        q.members.len() == 3 && q.online.len() == 3 && q.messages == 2 * MESSAGES as u64
    })
    .await;
    let rejoined = restart_began.elapsed();
    let running = cluster.running_nodes(stopped).await;
    println!(
        "cluster rejoin: stopped {} (the leader) in {stop_took:.1?}; {} leads {election:.1?} \
         after the stop began; restarted in {booted:.1?}, all 3 members online {rejoined:.1?} \
         after the restart began; {} messages; members {:?}",
        before.leader, moved.leader, after.messages, after.members
    );
    assert_eq!(
        running.len(),
        3,
        "the restarted node sees all three: {running:?}"
    );
    let stopped_name = &cluster.nodes()[stopped].name;
    assert!(
        after.members.contains(stopped_name) && after.online.contains(stopped_name),
        "the restarted node holds an online member again: {after:?}"
    );
    cluster.cleanup();
}

/// Waits (bounded) until a persistent message published through node `node`
/// to a quorum queue `P.probe` is confirmed within a second; the queue is
/// deleted again.
async fn probe(cluster: &Cluster, node: usize, topology: &Topology) {
    use kyc_bus::lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
    use kyc_bus::lapin::types::{AMQPValue, FieldTable, LongString};
    let queue = format!("{}.probe", topology.prefix());
    let url = cluster.nodes()[node].url();
    let started = Instant::now();
    eventually(
        Duration::from_secs(120),
        &format!("node {node} confirms a publish to a quorum queue"),
        || {
            let (url, queue) = (url.clone(), queue.clone());
            async move {
                let connection = kyc_bus::connect(&url, "kyc-tests-probe").await.ok()?;
                let mut arguments = FieldTable::default();
                arguments.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString(LongString::from("quorum")),
                );
                let declared = async {
                    let channel = connection.create_channel().await.ok()?;
                    let durable = QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    };
                    channel
                        .queue_declare(queue.as_str().into(), durable, arguments)
                        .await
                        .ok()?;
                    let confirm = ConfirmChannel::open(&connection, Duration::from_secs(1))
                        .await
                        .ok()?;
                    confirm
                        .publish(Outgoing {
                            exchange: "",
                            routing_key: &queue,
                            payload: b"probe",
                            properties: persistent(),
                            mandatory: true,
                        })
                        .await
                        .ok()?;
                    Some(channel)
                }
                .await;
                if let Some(channel) = &declared {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let _ = connection.close(200, "bye".into()).await;
                declared.map(drop)
            }
        },
    )
    .await;
    let took = started.elapsed();
    if took > Duration::from_secs(2) {
        println!("cluster: node {node} confirmed its first probe after {took:.1?}");
    }
}

/// A snapshot of `queue` that satisfies `ok`, awaited with a bound.
async fn replicas_where(
    cluster: &Cluster,
    queue: &str,
    what: &str,
    ok: impl Fn(&crate::support::QueueReplicas) -> bool,
) -> crate::support::QueueReplicas {
    eventually(
        Duration::from_secs(90),
        &format!("{queue}: {what}"),
        || async { cluster.queue(queue).await.filter(|q| ok(q)) },
    )
    .await
}

/// The scenario of this module's first test and of `broker_sigkill`.
pub(crate) async fn failover_under_load(fault: Fault) {
    let label = match fault {
        Fault::Stop => "cluster failover (stop)",
        Fault::Kill => "cluster failover (SIGKILL)",
    };
    ensure_pg_up();
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let mut cluster = Cluster::start(3).await;
    let queue = env.topology.submissions_queue();

    // The topology first, to know where the queue's leader is.
    let connection = kyc_bus::connect(&cluster.urls_from(0), "kyc-tests-cluster")
        .await
        .expect("a node answers");
    env.topology
        .ensure(&connection)
        .await
        .expect("the topology");
    let _ = connection.close(200, "bye".into()).await;
    let replicas = replicas_where(&cluster, &queue, "three members", |q| {
        q.members.len() == 3 && q.online.len() == 3
    })
    .await;
    let leader = cluster
        .index_of(&replicas.leader)
        .expect("the leader is ours");
    let (other1, other2) = ((leader + 1) % 3, (leader + 2) % 3);
    // Every node confirms a publish to a three-member quorum queue before any
    // load begins: the load starts on a cluster that replicates.
    for node in 0..3 {
        probe(&cluster, node, &env.topology).await;
    }

    // One intake and one worker begin with the leader's node (they must move),
    // the others with the two other nodes; the push, on one connection that
    // ends the run if it breaks, with a node that stays.
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut workers_a = Workers::new(
        &env,
        200,
        400,
        &[("KYC__AMQP__URL", &cluster.urls_from(leader))],
    )
    .named("worker-a");
    let mut workers_b = Workers::new(
        &env,
        200,
        400,
        &[("KYC__AMQP__URL", &cluster.urls_from(other2))],
    )
    .named("worker-b");
    workers_a.spawn();
    workers_b.spawn();
    // Publishes stuck on a lost node fail fast (503, retried by the client).
    let mut intakes = Intakes::new(&env, &[("KYC__AMQP__CONFIRM_TIMEOUT_MS", "2000")]);
    let addrs = [
        intakes.spawn(&cluster.urls_from(leader)),
        intakes.spawn(&cluster.urls_from(other1)),
    ];
    let apis = addrs.map(Api::new);
    for (addr, api) in addrs.iter().zip(&apis) {
        // Listening first (the client fails the test on a refused connection).
        eventually(Duration::from_secs(60), "an intake listening", || async {
            tokio::net::TcpStream::connect(addr).await.ok().map(drop)
        })
        .await;
        eventually(Duration::from_secs(60), "an intake ready", || async {
            (api.get("/readyz", None).await.status.as_u16() == 200).then_some(())
        })
        .await;
    }

    let file = dir.join("bulk.jsonl");
    let lines: Vec<String> = (0..RECORDS)
        .map(|i| record(&format!("push-{i}")).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    // The push first, then the HTTP load once the push is storing: the two
    // do not begin in the same instant on a shared machine.
    let mut push = PushProcess::spawn(&file, &cluster.urls_from(other1), &env, &key);
    eventually(Duration::from_secs(120), "the push storing records", || {
        let ended = push.exited().is_some();
        let env = &env;
        async move { (ended || env.count_rows().await >= 1_000).then_some(()) }
    })
    .await;

    let t0 = Instant::now();
    let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let stop_load = CancellationToken::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let intake = c % apis.len();
            let (api, key, attempts, stop) = (
                apis[intake].clone(),
                key.clone(),
                attempts.clone(),
                stop_load.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.is_cancelled() {
                    let userid = format!("http-{c}-{n}");
                    let body = serde_json::to_vec(&record(&userid)).unwrap();
                    let reply = api
                        .submit_raw(Some(&key), body, &[("idempotency-key", &userid)])
                        .await;
                    let status = reply.status.as_u16();
                    attempts.lock().unwrap().push(Attempt {
                        intake,
                        answered: t0.elapsed(),
                        status,
                        error_code: reply.error_code().map(str::to_owned),
                        retry_after: reply.retry_after.clone(),
                        userid,
                    });
                    match status {
                        200 => n += 1,
                        // Retried with the same key, as the contract allows.
                        503 => tokio::time::sleep(Duration::from_millis(100)).await,
                        _ => n += 1, // Not retryable: the test fails on it.
                    }
                }
            })
        })
        .collect();

    // The rows stored over time, to see how long storing paused.
    let samples: Arc<Mutex<Vec<(Duration, i64)>>> = Arc::default();
    let sampler = tokio::spawn({
        let (samples, stop, pool) = (samples.clone(), stop_load.clone(), env.store.pool().clone());
        async move {
            while !stop.is_cancelled() {
                if let Ok(rows) = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM submissions")
                    .fetch_one(&pool)
                    .await
                {
                    samples.lock().unwrap().push((t0.elapsed(), rows));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let oks = |attempts: &Arc<Mutex<Vec<Attempt>>>| {
        attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.status == 200)
            .count()
    };
    // Bounded; ends early if the push exits (checked below).
    eventually(
        Duration::from_secs(300),
        "the push and the HTTP load under way before the fault",
        || {
            let ended = push.exited().is_some();
            let (env, attempts) = (&env, &attempts);
            async move {
                let under_way = env.count_rows().await >= ROWS_BEFORE_FAULT
                    && oks(attempts) >= OKS_BEFORE_FAULT;
                (under_way || ended).then_some(())
            }
        },
    )
    .await;
    if let Some(status) = push.exited() {
        panic!("the push ended ({status}) before the fault");
    }

    // The fault begins when `rabbitmqctl stop` is called, or when SIGKILL is
    // sent (after the node has told its pid).
    let mut fault_began = t0.elapsed();
    let killed = match fault {
        Fault::Stop => {
            cluster.stop(leader).await;
            None
        }
        Fault::Kill => {
            let (pid, at) = cluster.kill(leader).await;
            fault_began = at - t0;
            Some(pid)
        }
    };
    let fault_done = t0.elapsed();
    let moved = replicas_where(&cluster, &queue, "a new leader", |q| {
        q.leader != replicas.leader && q.online.len() == 2
    })
    .await;
    let new_leader = t0.elapsed();

    let (push_status, push_log) = push
        .finish(Duration::from_secs(300), &push::default_results_path(&file))
        .await;
    let push_done = t0.elapsed();
    // For a SIGKILL, the node comes back (while the HTTP load still runs) and
    // rejoins with its member of the queue.
    let restarted = if fault == Fault::Kill {
        let began = Instant::now();
        cluster.restart(leader).await;
        let after = replicas_where(&cluster, &queue, "three online members again", |q| {
            q.online.len() == 3
        })
        .await;
        Some((began.elapsed(), after))
    } else {
        None
    };
    // The load runs on for a while after the fault in any case.
    let until = fault_done + Duration::from_secs(10);
    tokio::time::sleep(until.saturating_sub(t0.elapsed())).await;
    stop_load.cancel();
    for client in clients {
        client.await.expect("client task");
    }
    sampler.await.expect("sampler task");
    let intakes_alive = intakes.all_running();

    let attempts = attempts.lock().unwrap().clone();
    let samples = samples.lock().unwrap().clone();
    // How long ingestion paused: the longest time without an HTTP 200 from the
    // fault on, and the longest time without a new stored row between the fault
    // and the end of the push.
    let ok_times = |intake: Option<usize>| {
        let mut times: Vec<Duration> = attempts
            .iter()
            .filter(|a| a.status == 200 && intake.is_none_or(|i| a.intake == i))
            .map(|a| a.answered)
            .collect();
        times.sort();
        times
    };
    let http_pause = longest_gap(ok_times(None).into_iter(), fault_began);
    // The intake that began with the lost node, and the other one.
    let moved_pause = longest_gap(ok_times(Some(0)).into_iter(), fault_began);
    let stayed_pause = longest_gap(ok_times(Some(1)).into_iter(), fault_began);
    let mut growth = Vec::new();
    for pair in samples.windows(2) {
        if pair[1].1 > pair[0].1 {
            growth.push(pair[1].0);
        }
    }
    let store_pause = longest_gap(growth.into_iter().filter(|t| *t <= push_done), fault_began);
    let count = |f: &dyn Fn(&Attempt) -> bool| attempts.iter().filter(|a| f(a)).count();
    println!(
        "{label}: leader {} {}; new leader {} {:.2?} after the fault began ({:.2?} to stop/kill); \
         ingestion paused {:.2?} over HTTP (longest time without a 200 from the fault on; \
         {:.2?} at the intake that was on the lost node, {:.2?} at the other) and \
         {:.2?} in storing (longest time without a new row until the push ended); \
         {} requests: {} × 200, {} × 503; push done {:.1?} after start{}",
        replicas.leader,
        match killed {
            Some(pid) => format!("SIGKILLed (beam pid {pid})"),
            None => "stopped".to_owned(),
        },
        moved.leader,
        new_leader - fault_began,
        fault_done - fault_began,
        http_pause,
        moved_pause,
        stayed_pause,
        store_pause,
        attempts.len(),
        count(&|a| a.status == 200),
        count(&|a| a.status == 503),
        push_done,
        match &restarted {
            Some((took, q)) => format!(
                "; node restarted, 3 members online {took:.1?} after the restart began ({:?})",
                q.online
            ),
            None => String::new(),
        }
    );

    // The push: exit 0, one result per line, every one accepted.
    assert!(
        push_status.success(),
        "kycctl push failed ({push_status}): {push_log}; logs in {}",
        dir.display()
    );
    let results = results_by_line(&push::default_results_path(&file), RECORDS);
    assert_eq!(results.len(), RECORDS, "one result line per input line");
    assert!(
        results.values().all(ResultLine::accepted),
        "every pushed record accepted"
    );

    // HTTP: 200 or 503 with Retry-After, nothing else.
    let other: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.status != 200 && a.status != 503)
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 200/503: {:?}",
        &other[..other.len().min(5)]
    );
    for a in attempts.iter().filter(|a| a.status == 503) {
        assert_eq!(a.error_code.as_deref(), Some("unavailable"), "{a:?}");
        assert!(a.retry_after.is_some(), "503 without Retry-After: {a:?}");
    }
    assert!(
        intakes_alive,
        "an intake exited; logs in {}",
        intakes.log_dir().display()
    );
    // The clients of the lost node moved to another one: the intake and the
    // worker that began there lost their link, and that intake answers 200
    // again after the fault.
    let moved_oks = count(&|a| a.intake == 0 && a.status == 200 && a.answered > fault_done);
    assert!(
        moved_oks > 0,
        "the intake of the lost node answered no 200 after the fault"
    );
    assert!(
        intakes.log_lines_with(1, "amqp link down") > 0
            && workers_a.log_lines_with("amqp link down") > 0,
        "the intake and the worker of the lost node lost their link; logs in {}",
        intakes.log_dir().display()
    );

    // Stored: every pushed line and every 200 once, nothing twice, nothing
    // never sent. Counted by userid.
    let ok_userids: BTreeSet<String> = attempts
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.userid.clone())
        .collect();
    let pushed_userids: BTreeSet<String> = (0..RECORDS).map(|i| format!("push-{i}")).collect();
    let sent: BTreeSet<String> = attempts
        .iter()
        .map(|a| a.userid.clone())
        .chain(pushed_userids.iter().cloned())
        .collect();
    let must: BTreeSet<String> = ok_userids.union(&pushed_userids).cloned().collect();
    let caught_up = Instant::now();
    eventually(
        Duration::from_secs(120),
        "a row for every 200 and every pushed line",
        || async {
            let stored: BTreeSet<String> = env.rows_per_userid().await.into_keys().collect();
            must.is_subset(&stored).then_some(())
        },
    )
    .await;
    let stored = env.stored_userids_at_most_once(&sent).await;
    let rows = env.count_rows().await;
    // What a row costs on disk (heap with TOAST, and indexes), for sizing.
    let (table, indexes): (i64, i64) =
        sqlx::query_as("SELECT pg_table_size('submissions'), pg_indexes_size('submissions')")
            .fetch_one(env.store.pool())
            .await
            .expect("the table's size");
    let dead = cluster
        .queue(&env.topology.dead_queue())
        .await
        .map(|q| q.messages);
    println!(
        "{label}: {rows} rows for {} userids ({} pushed, {} answered 200, {} sent over HTTP \
         but never answered 200) {:.1?} after the load stopped; {dead:?} dead-lettered; \
         on disk {} B per row in the table and {} B in its indexes",
        stored.len(),
        pushed_userids.len(),
        ok_userids.len(),
        stored.len() - must.len(),
        caught_up.elapsed(),
        table / rows.max(1),
        indexes / rows.max(1),
    );
    assert_eq!(rows as usize, stored.len(), "one row per stored userid");
    assert_eq!(dead, Some(0), "nothing dead-lettered");

    drop(workers_a);
    drop(workers_b);
    drop(intakes);
    cluster.cleanup();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The longest gap between consecutive `times` (sorted) among those from
/// `from` on, counting from `from` itself.
fn longest_gap(times: impl Iterator<Item = Duration>, from: Duration) -> Duration {
    let mut previous = from;
    let mut longest = Duration::ZERO;
    for t in times.filter(|t| *t >= from) {
        longest = longest.max(t - previous);
        previous = t;
    }
    longest
}

/// `kycctl push` running as a process of its own; killed on drop if it still runs
/// (a failing test leaves nothing behind).
#[derive(Debug)]
struct PushProcess {
    child: std::process::Child,
    stderr: std::path::PathBuf,
}

impl PushProcess {
    /// `kycctl push file`, given every node with `urls`.
    fn spawn(file: &Path, urls: &str, env: &TestEnv, key: &str) -> PushProcess {
        let stderr = file.with_extension("push.log");
        let log = std::fs::File::create(&stderr).expect("the push's log file");
        let child = std::process::Command::new(kyc_testkit::binary("kycctl"))
            .arg("push")
            .arg(file)
            .args(["--window", "1000", "--idle-timeout", "120"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KYC__AMQP__URL", urls)
            .env("KYC__AMQP__PREFIX", env.topology.prefix())
            // A leader election holds confirms for a moment, and this shared
            // machine can stall a node for seconds: 30 s rather than the
            // default 5 s before the push gives up (the rule that the HTTP
            // request timeout exceed 30 s + the confirm timeout applies to
            // every process's settings, so that one moves too).
            .env("KYC__AMQP__CONFIRM_TIMEOUT_MS", "30000")
            .env("KYC__HTTP__REQUEST_TIMEOUT_MS", "61000")
            .env("KYC_API_KEY", key)
            // Its phases (published, results written) show in its log.
            .env("RUST_LOG", "warn,kyc_cli=info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kycctl push");
        PushProcess { child, stderr }
    }

    /// Its exit status, if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits (bounded) for it to exit; its status and its log. If it does not
    /// exit in time, the test fails showing where each of its threads waits
    /// (from gdb, when installed), its log and how many results it wrote.
    async fn finish(
        &mut self,
        timeout: Duration,
        results: &Path,
    ) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            if Instant::now() >= deadline {
                let threads = std::process::Command::new("gdb")
                    .args(["-batch", "-p", &self.child.id().to_string()])
                    .args(["-ex", "thread apply all bt 30"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_else(|e| format!("(no gdb: {e})"));
                let written = std::fs::read_to_string(results)
                    .map(|text| text.lines().count())
                    .unwrap_or(0);
                let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                panic!(
                    "kycctl push did not exit within {timeout:?}; {written} result lines \
                     written; its log:\n{log}\nits threads:\n{threads}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (
            status,
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

impl Drop for PushProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
