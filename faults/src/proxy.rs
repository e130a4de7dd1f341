//! The UDP proxy between nodes: real traffic cuts, not a switch inside the node.
//!
//! Each node binds its real port and advertises a proxy port; every member sends to the proxy
//! port. The proxy knows who sent a datagram by its source port (a node sends everything from
//! its one bound QUIC port) and forwards it to the node's real port from a relay socket kept per
//! (sender, destination), so the destination's replies come back to that relay and go out to
//! the sender from the proxy port it spoke to. A blocked (from, to) pair drops datagrams in
//! that direction; both directions blocked is a partition.
//!
//! Invariants: the proxy never rewrites payloads; the number of relays per node is bounded
//! ([`RELAYS_PER_NODE_MAX`]); dropping the proxy stops all its tasks.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::NodeId;

/// Largest UDP payload.
const DATAGRAM_BYTES_MAX: usize = 65_535;
/// Distinct sources one node's proxy port relays for; others are dropped (a run has at most a
/// handful of nodes, each with one port, plus short-lived joiners).
const RELAYS_PER_NODE_MAX: usize = 64;

/// Counters for the summary.
#[derive(Default, Debug)]
pub struct ProxyStats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Default)]
struct Shared {
    /// Directed cuts: datagrams from the first node to the second are dropped.
    blocked: RwLock<HashSet<(NodeId, NodeId)>>,
    /// Real (bound) port of each node, to tell who sent a datagram.
    senders: RwLock<HashMap<u16, NodeId>>,
    stats: ProxyStats,
}

impl Shared {
    fn sender_of(&self, address: SocketAddr) -> Option<NodeId> {
        self.senders.read().ok()?.get(&address.port()).copied()
    }

    /// Whether a datagram from `from` (None: not a known node, never cut) to `to` passes.
    fn passes(&self, from: Option<NodeId>, to: NodeId) -> bool {
        let Some(from) = from else { return true };
        let blocked = self.blocked.read().map(|set| set.contains(&(from, to))).unwrap_or(false);
        let counter = if blocked { &self.stats.dropped } else { &self.stats.forwarded };
        counter.fetch_add(1, Ordering::Relaxed);
        !blocked
    }
}

/// The proxy; its tasks run on the runtime given to [`Proxy::new`] until it is dropped.
pub struct Proxy {
    runtime: Handle,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub fn new(runtime: Handle) -> Self {
        Proxy { runtime, shared: Arc::default(), tasks: Arc::default() }
    }

    /// Listens on `listen` for traffic to `node`, whose real port is `real`, and records `real`
    /// as the port `node` sends from. Returns the bound proxy address.
    pub fn add_node(
        &self,
        node: NodeId,
        listen: SocketAddr,
        real: SocketAddr,
    ) -> anyhow::Result<SocketAddr> {
        let socket = std::net::UdpSocket::bind(listen)
            .with_context(|| format!("bind proxy port {listen}"))?;
        socket.set_nonblocking(true)?;
        let bound = socket.local_addr()?;
        self.shared
            .senders
            .write()
            .map_err(|_| anyhow::anyhow!("proxy lock poisoned"))?
            .insert(real.port(), node);
        let shared = Arc::clone(&self.shared);
        let tasks = Arc::clone(&self.tasks);
        let runtime = self.runtime.clone();
        let task = self.runtime.spawn(async move {
            match UdpSocket::from_std(socket) {
                Ok(socket) => {
                    listen_loop(Arc::new(socket), node, real, shared, tasks, runtime).await
                }
                Err(error) => eprintln!("proxy for node {node}: {error}"),
            }
        });
        self.push_task(task);
        Ok(bound)
    }

    fn push_task(&self, task: JoinHandle<()>) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Drops datagrams from `from` to `to` until healed.
    pub fn block(&self, from: NodeId, to: NodeId) {
        if let Ok(mut blocked) = self.shared.blocked.write() {
            blocked.insert((from, to));
        }
    }

    /// Cuts both directions between every node of `side` and every node of `others`.
    pub fn partition(&self, side: &[NodeId], others: &[NodeId]) {
        for &a in side {
            for &b in others {
                self.block(a, b);
                self.block(b, a);
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        if let Ok(mut blocked) = self.shared.blocked.write() {
            blocked.clear();
        }
    }

    pub fn stats(&self) -> (u64, u64) {
        (
            self.shared.stats.forwarded.load(Ordering::Relaxed),
            self.shared.stats.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}

/// Receives datagrams addressed to `node` and relays them to its real address.
async fn listen_loop(
    socket: Arc<UdpSocket>,
    node: NodeId,
    real: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    runtime: Handle,
) {
    let mut relays: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        let Ok((length, source)) = socket.recv_from(&mut buffer).await else { continue };
        let sender = shared.sender_of(source);
        if !shared.passes(sender, node) {
            continue;
        }
        let relay = match relays.get(&source) {
            Some(relay) => Arc::clone(relay),
            None if relays.len() >= RELAYS_PER_NODE_MAX => continue,
            None => {
                let Ok(relay) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                let relay = Arc::new(relay);
                relays.insert(source, Arc::clone(&relay));
                let reply_task = runtime.spawn(reply_loop(
                    Arc::clone(&relay),
                    Arc::clone(&socket),
                    node,
                    source,
                    Arc::clone(&shared),
                ));
                if let Ok(mut tasks) = tasks.lock() {
                    tasks.push(reply_task);
                }
                relay
            }
        };
        // A full socket buffer drops the datagram, as a network would.
        let _ = relay.send_to(&buffer[..length], real).await;
    }
}

/// Carries `node`'s replies arriving at `relay` back to `peer` from the proxy port.
async fn reply_loop(
    relay: Arc<UdpSocket>,
    proxy_port: Arc<UdpSocket>,
    node: NodeId,
    peer: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    let peer_node = shared.sender_of(peer);
    loop {
        let Ok((length, _)) = relay.recv_from(&mut buffer).await else { continue };
        // The peer's node id may have been registered after the relay was made.
        let peer_node = peer_node.or_else(|| shared.sender_of(peer));
        if let Some(peer_node) = peer_node {
            if !shared.passes(Some(node), peer_node) {
                continue;
            }
        }
        let _ = proxy_port.send_to(&buffer[..length], peer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn receive(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buffer = [0u8; 64];
        let (length, from) =
            tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buffer))
                .await
                .ok()?
                .ok()?;
        Some((buffer[..length].to_vec(), from))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relays_both_ways_and_cuts_by_direction() {
        let proxy = Proxy::new(Handle::current());
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let _a_proxy = proxy.add_node(1, any, a.local_addr().unwrap()).unwrap();
        let b_proxy = proxy.add_node(2, any, b.local_addr().unwrap()).unwrap();

        a.send_to(b"ping", b_proxy).await.unwrap();
        let (payload, relay) = receive(&b).await.expect("a reaches b through the proxy");
        assert_eq!(payload, b"ping");
        assert_ne!(relay, a.local_addr().unwrap(), "b sees the relay, not a");
        b.send_to(b"pong", relay).await.unwrap();
        let (payload, from) = receive(&a).await.expect("b's reply reaches a");
        assert_eq!(
            (payload.as_slice(), from),
            (&b"pong"[..], b_proxy),
            "the reply comes from b's proxy port"
        );

        // One-way cut a -> b: a's datagrams are dropped, b's still arrive.
        proxy.block(1, 2);
        a.send_to(b"lost", b_proxy).await.unwrap();
        assert!(receive(&b).await.is_none());
        b.send_to(b"still", relay).await.unwrap();
        assert_eq!(receive(&a).await.map(|(payload, _)| payload), Some(b"still".to_vec()));

        // A partition cuts the replies too; healing restores both.
        proxy.partition(&[1], &[2]);
        b.send_to(b"cut", relay).await.unwrap();
        assert!(receive(&a).await.is_none());
        proxy.heal();
        a.send_to(b"back", b_proxy).await.unwrap();
        assert_eq!(receive(&b).await.map(|(payload, _)| payload), Some(b"back".to_vec()));
        let (forwarded, dropped) = proxy.stats();
        assert_eq!((forwarded, dropped), (4, 2));
    }
}
