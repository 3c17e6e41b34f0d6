//! How `lab proxy` becomes a running [`ReverseProxy`]: the [`ProxyConfig`]
//! the command line makes of its flags, and the start that turns it into a
//! proxy (the balancer over the upstream set, the Transport, the layers).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::reverse_proxy::ReverseProxy;
use crate::balance::{Algorithm, BalancerConfig, HashKey, RingPoints};
use crate::discovery::{HealthConfig, Source, Upstreams};
use crate::middleware::{Layers, LayersConfig};
use crate::proxy::director::Director;
use crate::proxy::headers::{ForwardedPolicy, Pseudonym};
use crate::proxy::like_go::Flavour;
use crate::proxy::modify::{ErrorStyle, ModifyResponse};
use crate::proxy::transport::{Transport, TransportConfig};
use crate::server;

/// Everything `lab proxy` is told (its flags, as the command line turns
/// them into values): where the upstreams come from, how to balance, what
/// the Director and ModifyResponse change, the timeouts and the layers.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where to listen (`lab proxy --listen`).
    pub listen: SocketAddr,
    /// The upstreams: fixed (`--upstream`) or discovered in ZooKeeper.
    pub source: Source,
    pub algorithm: Algorithm,
    /// The random balancer's seed; drawn (and logged) when `None`.
    pub seed: Option<u64>,
    /// Consistent hash: virtual nodes per unit of weight, and where they land.
    pub replicas: usize,
    pub ring: RingPoints,
    pub hash_key: HashKey,
    pub director: Director,
    pub modify: ModifyResponse,
    pub errors: ErrorStyle,
    pub forwarded: ForwardedPolicy,
    /// Pass request headers whose names have underscores.
    pub keep_underscores: bool,
    /// How long to wait for a response head; `None`: as long as it takes
    /// (Go's Transport without ResponseHeaderTimeout).
    pub response_timeout: Option<Duration>,
    /// Lab's rules, or Go's where they differ (`--like-go`).
    pub flavour: Flavour,
    /// Go's FlushInterval; `None` (or zero) flushes every chunk at once.
    pub flush_interval: Option<Duration>,
    pub retries: usize,
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    pub limits: server::Limits,
    /// Active health checks (`--health-check`), when asked for.
    pub health: Option<HealthConfig>,
    pub layers: LayersConfig,
    pub transport: TransportConfig,
    /// Worker threads, each a runtime with its own listener (`--threads`;
    /// see [`crate::workers`]).
    pub threads: usize,
}

/// `lab proxy`: builds the proxy and serves until shutdown.
pub async fn run(
    config: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let threads = config.threads.clamp(1, crate::workers::MAX);
    let listeners = crate::net::bind_reuseport(config.listen, threads, "--listen")?;
    let addr = listeners[0].local_addr()?;
    let algorithm = config.algorithm;
    let discovery = match &config.source {
        Source::ZooKeeper(url) => Some(url.clone()),
        Source::Static(_) => None,
    };
    let proxy = Arc::new(ReverseProxy::start(config).await?);
    let upstreams: Vec<String> = proxy
        .upstreams
        .status()
        .upstreams
        .iter()
        .map(|u| format!("{} (weight {})", u.url, u.weight))
        .collect();
    let upstreams = match discovery {
        Some(url) if upstreams.is_empty() => {
            format!("the servers registered under {url} (none yet)")
        }
        Some(url) => format!("{} (from {url})", upstreams.join(", ")),
        None => upstreams.join(", "),
    };
    tracing::info!("Starting ReverseProxy at {addr} → {upstreams}, balanced by {algorithm}");
    tracing::info!("try: curl -s http://{addr}/abc   (Ctrl-C stops the proxy)");
    tracing::debug!("serving on {threads} worker thread(s), one runtime each");
    let serve = move |listener, stop| proxy.clone().serve(listener, stop);
    crate::workers::serve(listeners, serve, shutdown).await?;
    tracing::info!("proxy stopped");
    Ok(())
}

impl ReverseProxy {
    /// The proxy `config` describes. With discovery it reads the upstreams
    /// from ZooKeeper first (and fails if it cannot); with health checks
    /// the probes start at once.
    pub async fn start(config: ProxyConfig) -> anyhow::Result<ReverseProxy> {
        let seed = config.seed.unwrap_or_else(|| {
            let seed = rand::random();
            if config.algorithm == Algorithm::Random {
                tracing::info!(
                    "random balancer seed {seed} (repeat this sequence with --seed {seed})"
                );
            }
            seed
        });
        let balancer = BalancerConfig {
            algorithm: config.algorithm,
            seed,
            replicas: config.replicas,
            ring: config.ring,
        };
        let transport = Transport::new(&config.transport);
        let upstreams =
            Upstreams::start(config.source, balancer, config.health, transport.clone()).await?;
        let layers = Layers::new(&config.layers);
        for line in layers.describe() {
            tracing::info!("{line}");
        }
        Ok(ReverseProxy {
            upstreams,
            hash_key: config.hash_key,
            director: config.director,
            modify: config.modify,
            errors: config.errors,
            forwarded: config.forwarded,
            keep_underscores: config.keep_underscores,
            response_timeout: config.response_timeout,
            flavour: config.flavour,
            flush_interval: config.flush_interval.filter(|d| !d.is_zero()),
            transport,
            layers,
            pseudonym: Pseudonym::new(format!("lab-{:08x}", rand::random::<u32>())),
            retries: config.retries,
            trusted_proxies: config.trusted_proxies,
            limits: config.limits,
        })
    }
}
