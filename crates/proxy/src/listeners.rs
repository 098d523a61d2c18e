//! Running listeners: binds what LDS asks for, swaps the config of a
//! listener whose address did not change (no rebind), and stops listeners
//! LDS dropped. Open HTTP connections follow a replaced listener's config
//! (see `config_follower.rs`).
//! Listeners with `bind_to_port: false` are not bound: a `use_original_dst`
//! listener hands them the connections originally sent to their address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::connection::serve_connection;
use crate::listener::{Direction, ListenerSpec};
use crate::state::ProxyState;

pub struct Listeners {
    state: Weak<ProxyState>,
    running: Mutex<HashMap<String, Running>>,
    /// Every listener by its address, for original-destination hand-off.
    by_address: ArcSwap<HashMap<SocketAddr, SharedSpec>>,
    /// Set by `/drain_listeners`: these listeners accept nothing more, and
    /// ones LDS adds later never start accepting.
    drained: Mutex<Option<DrainScope>>,
    /// Bumped when an update replaced or dropped a listener.
    replaced: watch::Sender<u64>,
}

/// Which listeners `/drain_listeners` stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainScope {
    Inbound,
    All,
}

impl DrainScope {
    fn covers(self, direction: Direction) -> bool {
        self == DrainScope::All || direction == Direction::Inbound
    }
}

type SharedSpec = Arc<ArcSwap<ListenerSpec>>;

struct Running {
    address: SocketAddr,
    spec: SharedSpec,
    bound: bool,
    stop: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl Listeners {
    pub fn new(state: Weak<ProxyState>) -> Self {
        Listeners {
            state,
            running: Mutex::default(),
            by_address: ArcSwap::default(),
            drained: Mutex::default(),
            replaced: watch::Sender::new(0),
        }
    }

    /// Changes when an update replaces or drops listeners.
    pub fn replacements(&self) -> watch::Receiver<u64> {
        self.replaced.subscribe()
    }

    /// The running config of listener `name`.
    pub fn spec_of(&self, name: &str) -> Option<Arc<ListenerSpec>> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(name).map(|r| r.spec.load_full())
    }

    /// The digest of the running config of listener `name`.
    pub fn digest_of(&self, name: &str) -> Option<u64> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(name).map(|r| r.spec.load().digest)
    }

    /// Stops the accept loops of the listeners `scope` covers, now and for
    /// listeners added later; returns how many were accepting.
    pub fn stop_accepting(&self, scope: DrainScope) -> usize {
        let mut drained = self.drained.lock().unwrap_or_else(|e| e.into_inner());
        *drained = Some(match *drained {
            Some(DrainScope::All) => DrainScope::All,
            _ => scope,
        });
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .values()
            .filter(|r| r.bound && scope.covers(r.spec.load().direction))
            .filter(|r| !r.stop.send_replace(true))
            .count()
    }

    /// Whether `/drain_listeners` stopped any listeners.
    pub fn any_drained(&self) -> bool {
        self.drained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn is_drained(&self, direction: Direction) -> bool {
        let drained = self.drained.lock().unwrap_or_else(|e| e.into_inner());
        drained.is_some_and(|scope| scope.covers(direction))
    }

    /// Makes the running set equal `specs`. Binding happens before anything
    /// changes, so an address that cannot be bound rejects the whole update.
    pub fn update(&self, specs: Vec<ListenerSpec>) -> Result<(), String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = Vec::new();
        for spec in &specs {
            let reusable = running
                .get(&spec.name)
                .is_some_and(|r| r.address == spec.address && r.bound == spec.bind_to_port);
            if !reusable && spec.bind_to_port {
                let socket = bind(spec.address).map_err(|e| {
                    format!("listener {}: cannot bind {}: {e}", spec.name, spec.address)
                })?;
                fresh.push((spec.name.clone(), socket));
            }
        }
        let mut next = HashMap::new();
        let mut replaced = false;
        let mut sockets: HashMap<_, _> = fresh.into_iter().collect();
        for spec in specs {
            let name = spec.name.clone();
            let previous = running.remove(&name);
            let listener = match previous {
                Some(existing)
                    if existing.address == spec.address && existing.bound == spec.bind_to_port =>
                {
                    replaced |= existing.spec.load().digest != spec.digest;
                    existing.spec.store(Arc::new(spec));
                    existing
                }
                // Rebound elsewhere: the old one is replaced too.
                other => {
                    replaced |= other.is_some();
                    self.start(sockets.remove(&name), spec)
                }
            };
            next.insert(name, listener);
        }
        replaced |= !running.is_empty(); // listeners left over are dropped
        *running = next; // dropping the rest stops them
        let by_address = running
            .values()
            .map(|r| (r.address, r.spec.clone()))
            .collect();
        self.by_address.store(Arc::new(by_address));
        drop(running);
        if replaced {
            self.replaced.send_modify(|generation| *generation += 1);
        }
        Ok(())
    }

    /// The listener for a connection originally sent to `destination`: the
    /// one at exactly that address, else the wildcard one on its port (as
    /// Envoy hands off from a `use_original_dst` listener).
    pub fn for_destination(&self, destination: SocketAddr) -> Option<Arc<ListenerSpec>> {
        let listeners = self.by_address.load();
        let wildcard = SocketAddr::new(unspecified_like(destination.ip()), destination.port());
        listeners
            .get(&destination)
            .or_else(|| listeners.get(&wildcard))
            .map(|spec| spec.load_full())
    }

    /// Whether `destination` is a port this proxy itself listens on, at one
    /// of its own addresses: connecting there would loop through the proxy.
    pub fn is_own(&self, destination: SocketAddr, own_ip: IpAddr) -> bool {
        let local = |ip: IpAddr| ip == own_ip || ip.is_loopback() || ip.is_unspecified();
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.values().filter(|r| r.bound).any(|r| {
            r.address.port() == destination.port()
                && (r.address.ip() == destination.ip()
                    || (r.address.ip().is_unspecified() && local(destination.ip())))
        })
    }

    pub fn rds_names(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .values()
            .flat_map(|r| {
                r.spec
                    .load()
                    .rds_names()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .map(|(name, r)| (name.clone(), r.address))
            .collect()
    }

    fn start(&self, socket: Option<TcpListener>, spec: ListenerSpec) -> Running {
        let (stop, mut stopped) = watch::channel(false);
        let address = spec.address;
        let spec = Arc::new(ArcSwap::from_pointee(spec));
        let Some(socket) = socket else {
            return Running {
                address,
                spec,
                bound: false,
                stop,
            };
        };
        if self.is_drained(spec.load().direction) {
            // The socket closes here: a drained proxy takes no new connections.
            return Running {
                address,
                spec,
                bound: true,
                stop,
            };
        }
        let state = self.state.clone();
        let shared_spec = spec.clone();
        let mut drain = self.state.upgrade().map(|s| s.drain.watch());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = socket.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let Some(state) = state.upgrade() else { return };
                            tokio::spawn(serve_connection(stream, peer, shared_spec.load_full(), state));
                        }
                        Err(error) => {
                            tracing::warn!(%error, %address, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    },
                    _ = stopped.changed() => return,
                    () = draining(&mut drain) => return,
                }
            }
        });
        tracing::info!(%address, "listener started");
        Running {
            address,
            spec,
            bound: true,
            stop,
        }
    }
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

async fn draining(drain: &mut Option<crate::drain::Watch>) {
    match drain {
        Some(watch) => watch.started().await,
        None => std::future::pending().await,
    }
}

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests;
