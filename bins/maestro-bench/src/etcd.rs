//! etcd under test, for the store operations only: Debian's etcd on loopback ports with its own
//! data directory, driven with etcd-client as kube-apiserver's storage layer would drive it
//! (create-if-absent transactions under /registry/..., linearizable reads, prefix ranges and
//! prefix watches). One gRPC connection per simulated client.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, WatchClient, WatchOptions,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::payload;
use crate::procs::{CpuMeter, Server, free_port};
use crate::report::{Fanout, ListStat, Point, Results};
use crate::stats::{self, Sampler, Samples};
use crate::{Config, GET_TARGETS, WATCHES_PER_CONNECTION};

const PODS: &str = "/registry/pods/bench-list/";
const WATCHED: &str = "/registry/configmaps/bench-watch/";

/// Install Debian's etcd when the named binary is missing (as the project's scripts do).
pub fn ensure_installed(etcd: &str) -> anyhow::Result<()> {
    if std::process::Command::new(etcd)
        .arg("--version")
        .output()
        .is_ok()
    {
        return Ok(());
    }
    ensure!(
        etcd == "etcd",
        "{etcd} cannot be run (and only the default `etcd` is installed automatically)"
    );
    crate::progress("etcd missing: apt-get install -y etcd-server");
    let status = std::process::Command::new("apt-get")
        .args(["install", "-y", "etcd-server"])
        .status()
        .context("running apt-get")?;
    ensure!(status.success(), "apt-get install etcd-server failed");
    Ok(())
}

async fn start(etcd: &str) -> anyhow::Result<(Server, String)> {
    let dir = tempfile::Builder::new().prefix("etcd-bench-").tempdir()?;
    let (client_port, peer_port) = (free_port()?, free_port()?);
    let endpoint = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = std::process::Command::new(etcd);
    cmd.arg("--name")
        .arg("bench")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen-client-urls")
        .arg(&endpoint)
        .arg("--advertise-client-urls")
        .arg(&endpoint)
        .arg("--listen-peer-urls")
        .arg(&peer)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer)
        .arg("--initial-cluster")
        .arg(format!("bench={peer}"))
        .arg("--initial-cluster-state")
        .arg("new")
        .arg("--logger")
        .arg("zap")
        .arg("--log-outputs")
        .arg("stderr");
    let mut server = Server::spawn("etcd", cmd, dir)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        server.check_alive()?;
        if let Ok(mut client) = Client::connect([&endpoint], None).await
            && client.status().await.is_ok()
        {
            return Ok((server, endpoint));
        }
        ensure!(
            Instant::now() < deadline,
            "etcd not healthy after 30 s:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn kv(endpoint: &str) -> anyhow::Result<KvClient> {
    // Lists of 10,000 pods are far above tonic's 4 MiB default message size.
    Ok(Client::connect([endpoint], None)
        .await?
        .kv_client()
        .max_decoding_message_size(1 << 30))
}

async fn kvs(endpoint: &str, n: usize) -> anyhow::Result<Vec<KvClient>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(kv(endpoint).await?);
    }
    Ok(out)
}

/// kube-apiserver's create: a transaction that puts the key only if it has never existed.
async fn create(mut kv: KvClient, key: String, value: impl Into<Vec<u8>>) -> anyhow::Result<()> {
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.clone(), value, None)]);
    ensure!(kv.txn(txn).await?.succeeded(), "{key} already exists");
    Ok(())
}

fn configmap_key(ns: &str, name: &str) -> String {
    format!("/registry/configmaps/{ns}/{name}")
}

/// Run the store measurements against etcd with `pods` as the pod values.
pub async fn run(etcd: &str, cfg: &Config, pods: &[Bytes]) -> anyhow::Result<Results> {
    let (server, endpoint) = start(etcd).await?;
    let mut rss = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rss.push((Point::Idle, server.rss_kib()?));

    let reader = kv(&endpoint).await?;
    for i in 0..GET_TARGETS {
        let name = format!("get-{i:03}");
        create(
            reader.clone(),
            configmap_key("bench", &name),
            payload::configmap("bench", &name),
        )
        .await?;
    }
    let get_op = |mut kv: KvClient, i: usize| async move {
        // Linearizable (the default), as kube-apiserver reads etcd for a GET without a
        // resourceVersion.
        let resp = kv
            .get(
                configmap_key("bench", &format!("get-{:03}", i % GET_TARGETS)),
                None,
            )
            .await?;
        ensure!(resp.kvs().len() == 1, "missing object");
        Ok(())
    };
    crate::progress("etcd: GET, one client, idle");
    let get_idle = stats::sample(
        reader.clone(),
        cfg.get_samples / 10,
        cfg.get_samples,
        get_op,
    )
    .await?;

    let clients = kvs(&endpoint, cfg.clients).await?;
    crate::progress(&format!("etcd: creating {} pods", pods.len()));
    let values = std::sync::Arc::new(pods.to_vec());
    let pod_creates = stats::drive(clients.clone(), pods.len(), move |kv, i| {
        let value = values[i].to_vec();
        create(kv, format!("{PODS}pod-{i:05}"), value)
    })
    .await?;
    rss.push((Point::PodsCreated, server.rss_kib()?));

    crate::progress("etcd: range");
    let mut runs = Samples::default();
    let mut bytes = 0;
    for i in 0..=cfg.list_runs {
        let t = Instant::now();
        let resp = reader
            .clone()
            .get(PODS, Some(GetOptions::new().with_prefix()))
            .await?;
        let took = t.elapsed();
        ensure!(
            resp.kvs().len() == pods.len(),
            "range returned {} pods",
            resp.kvs().len()
        );
        if i > 0 {
            runs.push(took);
        }
        bytes = resp
            .kvs()
            .iter()
            .map(|kv| kv.key().len() + kv.value().len())
            .sum();
    }
    rss.push((Point::AfterJsonLists, server.rss_kib()?));

    crate::progress(&format!(
        "etcd: {} creates by {} clients, GET beside them",
        cfg.creates, cfg.clients
    ));
    let reader_endpoint = endpoint.clone();
    let sampler = Sampler::start(move || async move { kv(&reader_endpoint).await }, get_op)?;
    let meter = CpuMeter::start(&server)?;
    let creates = stats::drive(clients, cfg.creates, |kv, i| {
        let name = format!("cm-{i:06}");
        create(
            kv,
            configmap_key("bench", &name),
            payload::configmap("bench", &name),
        )
    })
    .await?;
    let creates_cpu = meter.stop()?;
    let get_loaded = sampler.finish()?;

    crate::progress(&format!("etcd: watch fan-out to {}", cfg.watchers));
    let fanout = fanout(&endpoint, cfg.watchers, cfg.rounds).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss.push((Point::End, server.rss_kib()?));
    let db = std::fs::metadata(server.path().join("data/member/snap/db"))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(Results {
        system: crate::machine::short_version(etcd),
        get_idle,
        pods: pod_creates,
        list_json: ListStat { runs, bytes },
        list_table: None,
        creates,
        creates_cpu,
        get_loaded,
        version_loaded: None,
        fanout,
        rss_kib: rss,
        notes: vec![format!(
            "store file at the end: {:.0} MiB (bbolt, never shrinks without defrag)",
            db as f64 / (1024.0 * 1024.0)
        )],
    })
}

async fn fanout(endpoint: &str, watchers: usize, rounds: usize) -> anyhow::Result<Fanout> {
    let writer = kv(endpoint).await?;
    let key = format!("{WATCHED}fanout");
    let initial = payload::configmap("bench-watch", "fanout");
    create(writer.clone(), key.clone(), initial.clone()).await?;

    let started = Instant::now();
    let mut conns: Vec<WatchClient> = Vec::new();
    for _ in 0..watchers.div_ceil(WATCHES_PER_CONNECTION) {
        conns.push(Client::connect([endpoint], None).await?.watch_client());
    }
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(watchers);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(u32, Instant)>();
    let mut tasks = JoinSet::new();
    for i in 0..watchers {
        let mut client = conns[i / WATCHES_PER_CONNECTION].clone();
        let (ready, seen) = (ready_tx.clone(), seen_tx.clone());
        tasks.spawn(async move {
            // Each call opens its own gRPC stream, as each kube-apiserver watch cache does.
            let mut stream = client
                .watch(WATCHED, Some(WatchOptions::new().with_prefix()))
                .await?;
            while let Some(resp) = stream.message().await? {
                let at = Instant::now();
                if resp.created() {
                    ready.send(()).await?;
                }
                for event in resp.events() {
                    if let Some(round) = event.kv().and_then(|kv| payload::round_of(kv.value())) {
                        let _ = seen.send((round, at));
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    drop((ready_tx, seen_tx));
    for _ in 0..watchers {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .context("watches not open after 60 s")?
            .context("a watch failed to open")?;
    }
    let setup = started.elapsed();

    let result = stats::deliver(rounds, watchers, &mut seen_rx, |round| {
        let (mut writer, key) = (writer.clone(), key.clone());
        let value = initial.replace("\"round\":\"0\"", &format!("\"round\":\"{round}\""));
        async move {
            writer.put(key, value, None).await?;
            Ok(())
        }
    })
    .await;
    tasks.abort_all();
    let (from_ack, from_send, round_max) = result?;
    Ok(Fanout {
        watchers,
        rounds,
        from_ack,
        from_send,
        round_max,
        setup,
    })
}
