//! Pod IP address management: addresses from the node's `spec.podCIDR`, one per pod UID,
//! persisted so a pod keeps its IP across agent restarts (ARCHITECTURE D7).
//!
//! Each allocation is a file `<data_dir>/ipam/<pod uid>` holding the address; [`Ipam::open`]
//! reads them back. Allocation walks the range round-robin from the last address handed out
//! (as CNI's host-local does), so a just-released IP is not immediately given to the next
//! pod while clients may still hold connections to it. Never allocated: the network address
//! (`.0.0`), `.0.1`, the broadcast address and the host's special loopback addresses.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::wasm::Ipv4Cidr;

/// What can go wrong allocating pod IPs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node's podCIDR is not `a.b.c.d/n`.
    #[error("invalid pod CIDR {0:?}")]
    InvalidCidr(String),
    /// Every address of the range is taken.
    #[error("no free pod IP left in {0}")]
    Exhausted(String),
    /// A pod UID that cannot name a file.
    #[error("invalid pod uid {0:?}")]
    InvalidUid(String),
    /// Reading or writing the allocation files failed.
    #[error("pod IP allocation file {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Parses `127.64.0.0/16`.
pub fn parse_cidr(s: &str) -> Result<Ipv4Cidr, Error> {
    let invalid = || Error::InvalidCidr(s.to_string());
    let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    // Wider than /8 is not a node's pod range; narrower than /30 leaves no pod address.
    if !(8..=30).contains(&prefix) {
        return Err(invalid());
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    Ok(Ipv4Cidr {
        addr: Ipv4Addr::from(u32::from(addr) & mask),
        prefix,
    })
}

/// Loopback addresses with a meaning on the host (systemd-resolved, Debian's hostname).
const HOST_SPECIAL: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 53),
    Ipv4Addr::new(127, 0, 1, 1),
];

/// The pod IPs of one node.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Cidr,
    by_uid: HashMap<String, Ipv4Addr>,
    used: BTreeSet<u32>,
    /// Offset in the range of the last address handed out.
    last: u32,
}

impl Ipam {
    /// Opens the allocations under `dir` for the range `cidr`. Allocations outside the range
    /// (the node got another podCIDR) are dropped.
    pub fn open(dir: &Path, cidr: Ipv4Cidr) -> Result<Ipam, Error> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut ipam = Ipam {
            dir: dir.to_path_buf(),
            cidr,
            by_uid: HashMap::new(),
            used: BTreeSet::new(),
            last: 1,
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let Some(uid) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if uid.starts_with('.') {
                continue;
            }
            let parsed = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
            match parsed {
                Some(ip) if ipam.allocatable(ip) && !ipam.used.contains(&ipam.offset(ip)) => {
                    ipam.used.insert(ipam.offset(ip));
                    ipam.by_uid.insert(uid, ip);
                }
                _ => {
                    tracing::warn!(%uid, "dropping a pod IP allocation outside the node's podCIDR");
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // Continue after the highest address in use, so a restart does not hand out an
        // address released just before it.
        ipam.last = ipam.used.last().copied().unwrap_or(1);
        Ok(ipam)
    }

    /// The range.
    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The IP of a pod, if it has one.
    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.by_uid.get(uid).copied()
    }

    /// The UIDs holding an IP.
    pub fn uids(&self) -> impl Iterator<Item = &str> {
        self.by_uid.keys().map(String::as_str)
    }

    /// The pod's IP: the one it already has, else a new one, persisted before it is returned.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr, Error> {
        if let Some(ip) = self.get(uid) {
            return Ok(ip);
        }
        if uid.is_empty()
            || !uid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidUid(uid.to_string()));
        }
        let size = 1u32 << (32 - u32::from(self.cidr.prefix));
        let ip = (1..size)
            .map(|step| (self.last + step) % size)
            .map(|offset| Ipv4Addr::from(u32::from(self.cidr.addr) + offset))
            .find(|ip| self.allocatable(*ip) && !self.used.contains(&self.offset(*ip)))
            .ok_or_else(|| Error::Exhausted(format!("{}/{}", self.cidr.addr, self.cidr.prefix)))?;
        let path = self.dir.join(uid);
        let tmp = self.dir.join(format!(".{uid}.tmp"));
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, format!("{ip}\n")).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        self.last = self.offset(ip);
        self.used.insert(self.last);
        self.by_uid.insert(uid.to_string(), ip);
        Ok(ip)
    }

    /// Frees a pod's IP (no-op if it has none).
    pub fn release(&mut self, uid: &str) -> Result<(), Error> {
        let Some(ip) = self.by_uid.remove(uid) else {
            return Ok(());
        };
        self.used.remove(&self.offset(ip));
        let path = self.dir.join(uid);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    fn offset(&self, ip: Ipv4Addr) -> u32 {
        u32::from(ip).wrapping_sub(u32::from(self.cidr.addr))
    }

    fn allocatable(&self, ip: Ipv4Addr) -> bool {
        let size = 1u32 << (32 - u32::from(self.cidr.prefix));
        let offset = self.offset(ip);
        self.cidr.contains(ip) && offset > 1 && offset < size - 1 && !HOST_SPECIAL.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr() -> Ipv4Cidr {
        parse_cidr("127.64.0.0/16").unwrap()
    }

    #[test]
    fn parses_and_normalises_cidrs() {
        let c = parse_cidr("127.65.3.4/16").unwrap();
        assert_eq!((c.addr, c.prefix), (Ipv4Addr::new(127, 65, 0, 0), 16));
        for bad in [
            "127.0.0.0",
            "127.0.0.0/33",
            "x/16",
            "127.0.0.0/31",
            "0.0.0.0/0",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn skips_network_and_first_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr()).unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(127, 64, 0, 2));
        assert_eq!(ipam.allocate("b").unwrap(), Ipv4Addr::new(127, 64, 0, 3));
        assert_eq!(
            ipam.allocate("a").unwrap(),
            Ipv4Addr::new(127, 64, 0, 2),
            "same pod, same IP"
        );
    }

    #[test]
    fn allocations_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ip = Ipam::open(dir.path(), cidr())
            .unwrap()
            .allocate("pod-1")
            .unwrap();
        let mut reopened = Ipam::open(dir.path(), cidr()).unwrap();
        assert_eq!(reopened.get("pod-1"), Some(ip));
        assert_ne!(reopened.allocate("pod-2").unwrap(), ip);
    }

    #[test]
    fn released_ips_are_reused_only_after_the_range_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), parse_cidr("10.0.0.0/29").unwrap()).unwrap();
        let ips: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("p{i}")).unwrap())
            .collect();
        assert_eq!(ips.first(), Some(&Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(ips.last(), Some(&Ipv4Addr::new(10, 0, 0, 6)));
        assert!(
            matches!(ipam.allocate("p5"), Err(Error::Exhausted(_))),
            "broadcast is never handed out"
        );
        ipam.release("p1").unwrap();
        assert_eq!(ipam.allocate("p6").unwrap(), ips[1]);
        assert!(!dir.path().join("p1").exists());
    }

    #[test]
    fn drops_allocations_outside_a_new_cidr_and_refuses_odd_uids() {
        let dir = tempfile::tempdir().unwrap();
        Ipam::open(dir.path(), cidr())
            .unwrap()
            .allocate("old")
            .unwrap();
        let mut ipam = Ipam::open(dir.path(), parse_cidr("127.65.0.0/16").unwrap()).unwrap();
        assert_eq!(ipam.get("old"), None);
        assert!(matches!(ipam.allocate("../x"), Err(Error::InvalidUid(_))));
    }
}
