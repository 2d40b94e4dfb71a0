//! A RabbitMQ cluster of a test's own on this machine, never the shared broker:
//! `n` nodes of the installed `rabbitmq-server`, each with its own node name
//! (`kyct<tag>n<i>@localhost`), AMQP and distribution ports (free ones, picked
//! at start), config file, data and log directories, all under one temporary
//! directory, sharing an Erlang cookie of their own. They run as the `rabbitmq`
//! user, like the system broker, and only ever load our own files.
//!
//! A [`Cluster`] can stop, SIGKILL and restart its nodes and find a queue's
//! leader. It is removed by [`Cluster::cleanup`], which is idempotent and also
//! runs on drop, so a failing test leaves no node behind; it never panics.
//! Every command blocks: the async methods run them on the blocking pool.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a node may take to boot (a cluster member that restarts waits for
/// its peers too).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory of RabbitMQ's own scripts in the Debian package. The scripts
/// on `PATH` are wrappers that, run as `rabbitmq`, write the system broker's
/// startup log and use its cookie; ours must touch neither.
/// `KYC_TEST_RABBITMQ_BIN` names another directory.
fn rabbitmq_bin() -> PathBuf {
    std::env::var_os("KYC_TEST_RABBITMQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/rabbitmq/bin"))
}

/// `n` distinct ports nothing listens on right now (the kernel's picks, all
/// held until every one is picked, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("its address").port())
        .collect()
}

/// Single-quoted for `sh -c`.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One node of a [`Cluster`].
#[derive(Debug, Clone)]
pub struct Node {
    /// The Erlang node name, e.g. `kyct3fa9n1@localhost`.
    pub name: String,
    /// Where it accepts AMQP (127.0.0.1 only).
    pub amqp_port: u16,
    dist_port: u16,
    dir: PathBuf,
}

impl Node {
    /// The node's AMQP URL (`guest` may log in over loopback).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    /// `host:port` of the AMQP listener.
    pub fn amqp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.amqp_port)
    }
}

/// What the blocking commands need: cheap to clone onto the blocking pool.
#[derive(Debug, Clone)]
struct Spec {
    root: PathBuf,
    nodes: Vec<Node>,
}

/// A queue as `rabbitmqctl list_queues` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueReplicas {
    /// The node of the queue's leader.
    pub leader: String,
    /// The nodes holding a member (replica).
    pub members: Vec<String>,
    /// The members that are running.
    pub online: Vec<String>,
    /// Messages in the queue.
    pub messages: u64,
}

/// `n` RabbitMQ nodes clustered together; removed on [`Cluster::cleanup`] or drop.
#[derive(Debug)]
pub struct Cluster {
    spec: Spec,
    cleaned: bool,
}

impl Cluster {
    /// Starts `n` nodes and joins every one to the first; returns once all `n`
    /// are running members. Fails the test if they do not come up (removing
    /// whatever was started).
    pub async fn start(n: usize) -> Cluster {
        tokio::task::spawn_blocking(move || Cluster::start_blocking(n))
            .await
            .unwrap_or_else(|e| panic!("starting a {n}-node RabbitMQ cluster: {e}"))
    }

    fn start_blocking(n: usize) -> Cluster {
        assert!(n >= 1, "a cluster has at least one node");
        let tag = format!("{:08x}", uuid::Uuid::now_v7().as_u128() as u32);
        let root = std::env::temp_dir().join(format!("kyc-cluster-{tag}"));
        let ports = free_ports(2 * n);
        let nodes = (0..n)
            .map(|index| Node {
                name: format!("kyct{tag}n{index}@localhost"),
                amqp_port: ports[2 * index],
                dist_port: ports[2 * index + 1],
                dir: root.join(format!("n{index}")),
            })
            .collect();
        // From here on, dropping `cluster` removes whatever was started.
        let cluster = Cluster {
            spec: Spec { root, nodes },
            cleaned: false,
        };
        cluster.spec.write_files();
        for node in &cluster.spec.nodes {
            cluster.spec.launch(node);
        }
        for node in &cluster.spec.nodes {
            assert!(
                cluster.spec.await_startup(node, BOOT_TIMEOUT),
                "node {} did not start; logs in {}",
                node.name,
                node.dir.join("log").display()
            );
        }
        let first = cluster.spec.nodes[0].name.clone();
        for node in &cluster.spec.nodes[1..] {
            for args in [
                "stop_app".to_owned(),
                format!("join_cluster {first}"),
                "start_app".to_owned(),
            ] {
                if let Err(e) = cluster.spec.ctl(node, &args) {
                    panic!("rabbitmqctl -n {} {args}: {e}", node.name);
                }
            }
        }
        let all = cluster.spec.wait_running(n, BOOT_TIMEOUT);
        assert!(all, "the {n} nodes did not all run as one cluster");
        cluster
    }

    /// The nodes, in the order they were started.
    pub fn nodes(&self) -> &[Node] {
        &self.spec.nodes
    }

    /// Every node's URL, comma-separated, beginning with node `first` and
    /// wrapping around: what a process given all of them connects to first.
    pub fn urls_from(&self, first: usize) -> String {
        let n = self.spec.nodes.len();
        (0..n)
            .map(|i| self.spec.nodes[(first + i) % n].url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.spec.nodes.iter().position(|n| n.name == name)
    }

    /// `queue`'s leader, members and message count (default vhost), asked of
    /// any node that answers; `None` if none does or the queue does not exist.
    pub async fn queue(&self, queue: &str) -> Option<QueueReplicas> {
        let (spec, queue) = (self.spec.clone(), queue.to_owned());
        tokio::task::spawn_blocking(move || spec.queue(&queue))
            .await
            .ok()
            .flatten()
    }

    /// The running nodes of the cluster, as node `from` sees them.
    pub async fn running_nodes(&self, from: usize) -> Vec<String> {
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || spec.running_nodes(&spec.nodes[from]))
            .await
            .unwrap_or_default()
    }

    /// Stops node `i` cleanly (`rabbitmqctl stop`: the node hands over and
    /// halts); returns once its AMQP port is closed.
    pub async fn stop(&self, i: usize) {
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || {
            let node = &spec.nodes[i];
            if let Err(e) = spec.ctl(node, "stop") {
                panic!("rabbitmqctl -n {} stop: {e}", node.name);
            }
            assert!(
                super::wait_blocking(Duration::from_secs(30), || !super::port_open(
                    &node.amqp_addr()
                )),
                "node {} still accepts AMQP after stop",
                node.name
            );
        })
        .await
        .expect("stopping a node");
    }

    /// SIGKILLs the Erlang VM of node `i` (its `beam.smp`, by the process id
    /// the node reports); returns once the process is gone. The pid of the
    /// killed process and when the signal was sent.
    pub async fn kill(&self, i: usize) -> (u32, Instant) {
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || {
            let node = &spec.nodes[i];
            let pid = spec
                .ctl(node, "eval 'os:getpid().'")
                .ok()
                .and_then(|out| out.trim().trim_matches('"').parse::<u32>().ok())
                .unwrap_or_else(|| panic!("the pid of node {}", node.name));
            let killed = Instant::now();
            assert!(
                super::run("kill", &["-KILL", &pid.to_string()]),
                "kill -KILL {pid}"
            );
            // Gone, or a zombie nobody has reaped yet: dead either way.
            let stat = PathBuf::from(format!("/proc/{pid}/stat"));
            let dead = || {
                std::fs::read_to_string(&stat).map_or(true, |s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
            };
            assert!(
                super::wait_blocking(Duration::from_secs(10), dead),
                "beam {pid} of {} still there after SIGKILL",
                node.name
            );
            (pid, killed)
        })
        .await
        .expect("killing a node")
    }

    /// Starts node `i` again (same name, ports and data) and waits until it
    /// runs and the cluster has all its nodes running again.
    pub async fn restart(&self, i: usize) {
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || {
            let node = &spec.nodes[i];
            spec.launch(node);
            assert!(
                spec.await_startup(node, BOOT_TIMEOUT),
                "node {} did not come back; logs in {}",
                node.name,
                node.dir.join("log").display()
            );
            assert!(
                spec.wait_running(spec.nodes.len(), BOOT_TIMEOUT),
                "node {} did not rejoin the cluster",
                node.name
            );
        })
        .await
        .expect("restarting a node");
    }

    /// Stops every node and removes the directory. Idempotent, never panics;
    /// also run on drop.
    pub fn cleanup(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        self.spec.cleanup();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl Spec {
    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn env_file(&self) -> PathBuf {
        self.root.join("rabbitmq-env.conf")
    }

    /// The cookie, an empty environment file (the system one names the system
    /// node), no plugins (no management listener to collide with), and each
    /// node's config with its listener, all owned by `rabbitmq`.
    fn write_files(&self) {
        let home = self.home();
        std::fs::create_dir_all(&home).expect("the cluster's directory");
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, uuid::Uuid::new_v4().simple().to_string()).expect("the cookie");
        std::fs::write(self.env_file(), "").expect("the environment file");
        std::fs::write(self.root.join("enabled_plugins"), "[].\n").expect("the plugins file");
        for node in &self.nodes {
            for sub in ["mnesia", "log"] {
                std::fs::create_dir_all(node.dir.join(sub)).expect("a node's directory");
            }
            std::fs::write(
                node.dir.join("rabbitmq.conf"),
                format!(
                    "listeners.tcp.1 = 127.0.0.1:{}\n\
                     # Fail fast and loud on a full disk of a test machine rather than block.\n\
                     disk_free_limit.absolute = 50MB\n",
                    node.amqp_port
                ),
            )
            .expect("a node's config");
        }
        let root = self.root.to_string_lossy().into_owned();
        assert!(
            super::run("chown", &["-R", "rabbitmq:rabbitmq", &root]),
            "chown {root} to rabbitmq"
        );
        assert!(super::run("chmod", &["755", &root]), "chmod {root}");
        let cookie = cookie.to_string_lossy().into_owned();
        assert!(super::run("chmod", &["400", &cookie]), "chmod the cookie");
    }

    /// Runs `script` as the `rabbitmq` user in the cluster's directory, under
    /// `timeout`; stdout, or stdout and stderr as the error.
    fn as_rabbitmq(&self, script: &str, timeout: Duration) -> Result<String, String> {
        let script = format!(
            "cd {} && exec timeout {} env HOME={} RABBITMQ_CONF_ENV_FILE={} {script}",
            quoted(&self.root.to_string_lossy()),
            timeout.as_secs().max(1),
            quoted(&self.home().to_string_lossy()),
            quoted(&self.env_file().to_string_lossy()),
        );
        let output = Command::new("su")
            .args(["rabbitmq", "-s", "/bin/sh", "-c", &script])
            .output()
            .map_err(|e| format!("cannot run su: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{}: {}{}",
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// `rabbitmqctl -n <node> args` (args are trusted test text).
    fn ctl(&self, node: &Node, args: &str) -> Result<String, String> {
        let ctl = rabbitmq_bin().join("rabbitmqctl");
        self.as_rabbitmq(
            &format!(
                "{} -n {} {args}",
                quoted(&ctl.to_string_lossy()),
                quoted(&node.name)
            ),
            Duration::from_secs(60),
        )
    }

    /// Starts the node's VM in the background (`-detached`).
    fn launch(&self, node: &Node) {
        let server = rabbitmq_bin().join("rabbitmq-server");
        let dir = |sub: &str| quoted(&node.dir.join(sub).to_string_lossy());
        let script = format!(
            "RABBITMQ_NODENAME={} RABBITMQ_CONFIG_FILE={} RABBITMQ_MNESIA_BASE={} \
             RABBITMQ_LOG_BASE={} RABBITMQ_DIST_PORT={} RABBITMQ_ENABLED_PLUGINS_FILE={} \
             ERL_EPMD_ADDRESS=127.0.0.1 \
             ERL_FLAGS='-kernel inet_dist_use_interface {{127,0,0,1}}' \
             {} -detached",
            quoted(&node.name),
            dir("rabbitmq.conf"),
            dir("mnesia"),
            dir("log"),
            node.dist_port,
            quoted(&self.root.join("enabled_plugins").to_string_lossy()),
            quoted(&server.to_string_lossy()),
        );
        if let Err(e) = self.as_rabbitmq(&script, Duration::from_secs(30)) {
            panic!("starting node {}: {e}", node.name);
        }
    }

    /// Waits until the node has booted (it registers with epmd a moment after
    /// `-detached` returns, so a refused `await_startup` is retried).
    fn await_startup(&self, node: &Node, timeout: Duration) -> bool {
        super::wait_blocking(timeout, || {
            self.ctl(node, "await_startup --timeout 10").is_ok()
                && super::port_open(&node.amqp_addr())
        })
    }

    fn running_nodes(&self, node: &Node) -> Vec<String> {
        let Ok(out) = self.ctl(node, "cluster_status --formatter json") else {
            return Vec::new();
        };
        serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .and_then(|status| {
                status["running_nodes"].as_array().map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// Whether some node sees `n` running nodes, within `timeout`.
    fn wait_running(&self, n: usize, timeout: Duration) -> bool {
        super::wait_blocking(timeout, || {
            self.nodes
                .iter()
                .filter(|node| super::port_open(&node.amqp_addr()))
                .any(|node| self.running_nodes(node).len() == n)
        })
    }

    fn queue(&self, queue: &str) -> Option<QueueReplicas> {
        self.nodes
            .iter()
            .filter(|node| super::port_open(&node.amqp_addr()))
            .find_map(|node| {
                let out = self
                    .ctl(
                        node,
                        "list_queues name leader members online messages --formatter json",
                    )
                    .ok()?;
                let list: serde_json::Value = serde_json::from_str(&out).ok()?;
                let entry = list.as_array()?.iter().find(|q| q["name"] == queue)?;
                let names = |key: &str| -> Vec<String> {
                    entry[key]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                Some(QueueReplicas {
                    leader: entry["leader"].as_str()?.to_owned(),
                    members: names("members"),
                    online: names("online"),
                    messages: entry["messages"].as_u64().unwrap_or(0),
                })
            })
    }

    /// Every process whose command line names the cluster's directory: our
    /// nodes' VMs, and nothing of anyone else's.
    fn our_pids(&self) -> Vec<u32> {
        let needle = self.root.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(&needle))
            })
            .collect()
    }

    /// Best effort, never panics: `rabbitmqctl stop` for each node still
    /// answering, SIGKILL for any VM of ours left, then the directory goes.
    fn cleanup(&self) {
        for node in &self.nodes {
            if super::port_open(&node.amqp_addr()) {
                let _ = self.ctl(node, "stop");
            }
        }
        let gone = super::wait_blocking(Duration::from_secs(10), || self.our_pids().is_empty());
        if !gone {
            for pid in self.our_pids() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = super::wait_blocking(Duration::from_secs(10), || self.our_pids().is_empty());
        }
        let left = self.our_pids();
        if left.is_empty() && std::thread::panicking() {
            // A failing test keeps the nodes' logs (and configs) for
            // inspection; their data goes.
            for node in &self.nodes {
                let _ = std::fs::remove_dir_all(node.dir.join("mnesia"));
            }
            eprintln!(
                "RabbitMQ test cluster: logs kept in {}",
                self.root.display()
            );
        } else if left.is_empty() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!(
                "RabbitMQ test cluster: processes {left:?} still running; {} kept",
                self.root.display()
            );
        }
    }
}
