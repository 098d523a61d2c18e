//! Running listeners: binds what LDS asks for, swaps the config of a
//! listener whose address did not change (no rebind, in-flight connections
//! keep the config they started with), and stops listeners LDS dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::connection::serve_connection;
use crate::listener::ListenerSpec;
use crate::state::ProxyState;

pub struct Listeners {
    state: Weak<ProxyState>,
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    address: SocketAddr,
    spec: Arc<ArcSwap<ListenerSpec>>,
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
        }
    }

    /// Makes the running set equal `specs`. Binding happens before anything
    /// changes, so an address that cannot be bound rejects the whole update.
    pub fn update(&self, specs: Vec<ListenerSpec>) -> Result<(), String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = Vec::new();
        for spec in &specs {
            let reusable = running
                .get(&spec.name)
                .is_some_and(|r| r.address == spec.address);
            if !reusable {
                let socket = bind(spec.address).map_err(|e| {
                    format!("listener {}: cannot bind {}: {e}", spec.name, spec.address)
                })?;
                fresh.push((spec.name.clone(), socket));
            }
        }
        let mut next = HashMap::new();
        let mut sockets: HashMap<_, _> = fresh.into_iter().collect();
        for spec in specs {
            let name = spec.name.clone();
            match (running.remove(&name), sockets.remove(&name)) {
                (Some(existing), None) => {
                    existing.spec.store(Arc::new(spec));
                    next.insert(name, existing);
                }
                (_, Some(socket)) => {
                    next.insert(name, self.start(socket, spec));
                }
                (None, None) => unreachable!("every new listener was bound above"),
            }
        }
        *running = next; // dropping the rest stops them
        Ok(())
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

    fn start(&self, socket: TcpListener, spec: ListenerSpec) -> Running {
        let (stop, mut stopped) = watch::channel(false);
        let address = spec.address;
        let spec = Arc::new(ArcSwap::from_pointee(spec));
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
            stop,
        }
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
