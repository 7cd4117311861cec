//! Samples and the small drivers that produce them: a closed-loop load over many clients and a
//! one-client sampler, both measuring every operation from just before the request to its reply.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

/// Latencies in milliseconds. Signed, because a watcher can see an update before the writer has
/// read its acknowledgement.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e3);
    }

    pub fn push_ms(&mut self, ms: f64) {
        self.0.push(ms);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank quantile (`q` in 0..=1); NaN when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    pub fn p50(&self) -> f64 {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> f64 {
        self.quantile(0.99)
    }

    pub fn max(&self) -> f64 {
        self.quantile(1.0)
    }
}

/// A closed-loop load: how many operations in how long, and each one's latency.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub ops: usize,
    pub wall: Duration,
    pub latency: Samples,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
}

/// Run operations `0..total` over `clients`, each client issuing its next operation as soon as
/// the previous one is answered (closed loop, like controllers and kubectl do). The first failure
/// aborts the rest.
pub async fn drive<C, F, Fut>(clients: Vec<C>, total: usize, op: F) -> anyhow::Result<Throughput>
where
    C: Clone + Send + 'static,
    F: Fn(C, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for client in clients {
        let (op, next) = (op.clone(), next.clone());
        workers.spawn(async move {
            let mut latency = Samples::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(latency);
                }
                let t = Instant::now();
                op(client.clone(), i)
                    .await
                    .with_context(|| format!("operation {i}"))?;
                latency.push(t.elapsed());
            }
        });
    }
    let mut latency = Samples::default();
    while let Some(done) = workers.join_next().await {
        latency.extend(done??);
    }
    Ok(Throughput {
        ops: total,
        wall: start.elapsed(),
        latency,
    })
}

/// `n` sequential operations by one client, after `warmup` unrecorded ones.
pub async fn sample<C, F, Fut>(client: C, warmup: usize, n: usize, op: F) -> anyhow::Result<Samples>
where
    C: Clone,
    F: Fn(C, usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut out = Samples::default();
    for i in 0..warmup + n {
        let t = Instant::now();
        op(client.clone(), i).await?;
        if i >= warmup {
            out.push(t.elapsed());
        }
    }
    Ok(out)
}

/// One client issuing sequential operations in the background until stopped: the reader that
/// runs beside a write load. It has its own thread and runtime, as a separate client process
/// would, so its latencies are not queued behind the load generator's tasks.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<Samples>>,
}

impl Sampler {
    /// Start a client with `connect` on the new thread, then run `op` in a loop.
    pub fn start<Connect, ConnectFut, C, F, Fut>(connect: Connect, op: F) -> anyhow::Result<Sampler>
    where
        Connect: FnOnce() -> ConnectFut + Send + 'static,
        ConnectFut: Future<Output = anyhow::Result<C>>,
        C: Clone,
        F: Fn(C, usize) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("get-sampler".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let client = connect().await;
                    let _ = started_tx.send(());
                    let client = client?;
                    let mut out = Samples::default();
                    let mut i = 0;
                    while !flag.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        op(client.clone(), i).await?;
                        out.push(t.elapsed());
                        i += 1;
                    }
                    Ok(out)
                })
            })?;
        // The load starts only once the reader is connected.
        let _ = started_rx.recv();
        Ok(Sampler { stop, thread })
    }

    pub fn finish(self) -> anyhow::Result<Samples> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("sampler thread panicked"))?
    }
}

/// Drive `rounds` updates through `update` and collect every watcher's receipt of each.
pub async fn deliver<F, Fut>(
    rounds: usize,
    watchers: usize,
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<(u32, Instant)>,
    update: F,
) -> anyhow::Result<(Samples, Samples, Vec<f64>)>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let (mut from_ack, mut from_send, mut round_max) =
        (Samples::default(), Samples::default(), Vec::new());
    for round in 1..=rounds as u32 {
        let sent = Instant::now();
        update(round).await?;
        let acked = Instant::now();
        let mut worst = f64::MIN;
        let mut got = 0;
        while got < watchers {
            let (r, at) = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                .await
                .with_context(|| format!("round {round}: {got} of {watchers} watchers saw it"))?
                .context("watchers ended")?;
            if r != round {
                continue;
            }
            // Signed: a watcher may read the event before the writer reads its reply.
            let ms = if at >= acked {
                at.duration_since(acked).as_secs_f64() * 1e3
            } else {
                -(acked.duration_since(at).as_secs_f64() * 1e3)
            };
            from_ack.push_ms(ms);
            from_send.push(at.duration_since(sent));
            worst = worst.max(ms);
            got += 1;
        }
        round_max.push(worst);
        // Quiet gap so rounds do not overlap.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((from_ack, from_send, round_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push_ms(ms as f64);
        }
        assert_eq!(s.p50(), 50.0);
        assert_eq!(s.p99(), 99.0);
        assert_eq!(s.max(), 100.0);
        assert!(Samples::default().p50().is_nan());
    }
}
