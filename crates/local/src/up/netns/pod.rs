//! One pod's network namespace: `eth0` (one end of a veth pair whose other
//! end is on the bridge) with the pod's address, `lo` up, a default route
//! via the bridge, and its hosts file in `/etc/netns/NAME/hosts`.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::NetnsError;
use super::command::{ip, ip_in, run};

/// Where `ip netns exec` (and `up`) find a namespace's own `/etc` files.
pub(crate) const NETNS_ETC: &str = "/etc/netns";

/// How a pod joins the bridge.
pub(crate) struct Attachment<'a> {
    pub bridge: &'a str,
    /// The host side of the veth pair (at most 15 bytes).
    pub host_veth: &'a str,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
}

/// Creates the namespace `name` and wires it to the bridge. On error
/// the namespace may exist: the caller records it first and deletes it.
pub(crate) fn create(
    name: &str,
    address: Ipv4Addr,
    link: &Attachment<'_>,
) -> Result<(), NetnsError> {
    ip(&["netns", "add", name])?;
    ip(&[
        "link",
        "add",
        link.host_veth,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        name,
    ])?;
    ip(&["link", "set", link.host_veth, "master", link.bridge])?;
    ip(&["link", "set", link.host_veth, "up"])?;
    ip_in(name, &["link", "set", "lo", "up"])?;
    let cidr = format!("{address}/{}", link.prefix);
    ip_in(name, &["addr", "add", &cidr, "dev", "eth0"])?;
    ip_in(name, &["link", "set", "eth0", "up"])?;
    ip_in(
        name,
        &["route", "add", "default", "via", &link.gateway.to_string()],
    )?;
    Ok(())
}

/// `/etc/netns/NAME/hosts`.
pub(crate) fn hosts_file(name: &str) -> PathBuf {
    PathBuf::from(NETNS_ETC).join(name).join("hosts")
}

/// Writes the pod's hosts file (world-readable, as `/etc/hosts` is).
pub(crate) fn write_hosts(name: &str, text: &str) -> Result<PathBuf, NetnsError> {
    let path = hosts_file(name);
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| NetnsError::Io { what, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
    }
    std::fs::write(&path, text).map_err(io("writing"))?;
    Ok(path)
}

/// Installs transparent capture inside the namespace, as the pod's
/// init container (`trellis iptables`) would.
pub(crate) fn install_capture(name: &str, trellis: &str) -> Result<(), NetnsError> {
    run("ip", &["netns", "exec", name, trellis, "iptables"]).map(drop)
}

/// Lets unprivileged processes bind ports below 1024 in this namespace
/// only, as Istio's gateway pods do with the same sysctl.
pub(crate) fn allow_low_ports(name: &str) -> Result<(), NetnsError> {
    let netns_path = PathBuf::from("/run/netns").join(name);
    let sysctl = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let io = |what: String| move |source| NetnsError::Io { what, source };
    // A thread of its own: joining a namespace affects only the
    // calling thread, which then ends.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let netns = File::open(&netns_path)
                    .map_err(io(format!("opening {}", netns_path.display())))?;
                nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|errno| io(format!("entering {name}"))(errno.into()))?;
                std::fs::write(sysctl, "0").map_err(io(format!("writing {sysctl} in {name}")))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Deletes the namespace (its veth pair and capture rules go with it)
/// and its `/etc/netns` directory. Missing pieces are not errors.
pub(crate) fn delete(name: &str) -> Result<(), NetnsError> {
    let exists = std::path::Path::new("/run/netns").join(name).exists();
    if exists {
        ip(&["netns", "del", name])?;
    }
    let etc = PathBuf::from(NETNS_ETC).join(name);
    match std::fs::remove_dir_all(&etc) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(NetnsError::Io {
            what: format!("removing {}", etc.display()),
            source: error,
        }),
        _ => Ok(()),
    }
}

/// A pod's `/etc/hosts`, as Kubernetes writes it (localhost, the pod's own
/// name) plus what cluster DNS would answer: each Service's names (`name`
/// only in the pod's own namespace, `name.ns`, `name.ns.svc` and
/// `name.ns.svc.cluster.local` everywhere) at its addresses.
pub(crate) fn hosts_text(pod: &str, address: Ipv4Addr, services: &[ServiceNames<'_>]) -> String {
    let mut text = String::from(
        "# Written by `trellis up --netns`: the pod's names and the mesh's Services.\n\
         127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    text.push_str(&format!("{address}\t{pod}\n"));
    for service in services {
        let (name, namespace) = (service.name, service.namespace);
        let mut names = Vec::with_capacity(4);
        if service.same_namespace {
            names.push(name.to_owned());
        }
        names.push(format!("{name}.{namespace}"));
        names.push(format!("{name}.{namespace}.svc"));
        names.push(format!("{name}.{namespace}.svc.cluster.local"));
        for ip in service.addresses {
            text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
    }
    text
}

/// One Service as a pod's hosts file names it.
pub(crate) struct ServiceNames<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub same_namespace: bool,
    pub addresses: &'a [Ipv4Addr],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_services_as_cluster_dns_would() {
        let reviews = [Ipv4Addr::new(10, 96, 0, 3)];
        let other = [Ipv4Addr::new(10, 96, 0, 9)];
        let services = [
            ServiceNames {
                name: "reviews",
                namespace: "default",
                same_namespace: true,
                addresses: &reviews,
            },
            ServiceNames {
                name: "web",
                namespace: "shop",
                same_namespace: false,
                addresses: &other,
            },
        ];
        let text = hosts_text("productpage-v1-0", Ipv4Addr::new(10, 42, 0, 7), &services);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"127.0.0.1\tlocalhost"));
        assert!(lines.contains(&"10.42.0.7\tproductpage-v1-0"));
        assert!(lines.contains(
            &"10.96.0.3\treviews reviews.default reviews.default.svc reviews.default.svc.cluster.local"
        ));
        assert!(lines.contains(&"10.96.0.9\tweb.shop web.shop.svc web.shop.svc.cluster.local"));
    }
}
