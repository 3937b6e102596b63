//! Who holds a window's lease, and whether that holder is provably gone.
//!
//! A `kill -9` leaves its lease behind; waiting for it to expire costs a whole `lease_secs`, so a process
//! that can *prove* the holder no longer exists takes the lease over at once. Proof needs more than a host
//! name and a pid: two containers with host networking share a host name but not a pid namespace, a
//! `hidepid` /proc hides live processes of other users, and pids are reused. So the owner id carries the
//! boot id, the pid namespace, the pid and the process's start time, and anything short of proof is
//! "unsure", which leaves the lease to expire.

use std::io::ErrorKind;
use std::path::Path;
use uuid::Uuid;

/// Marks the current owner-id format; ids without it (the old `host:pid:nonce`) are never judged dead.
const FORMAT: &str = "rc2";
/// Stands for an identity part this process could not read; such an owner is never judged dead.
const UNKNOWN: &str = "-";

/// The lease holder as stored in `collection_windows.lease_owner`.
#[derive(Clone, Debug)]
pub struct LeaseOwner {
    pub id: String,
    pub lease_secs: u64,
}

impl LeaseOwner {
    pub fn for_this_process(lease_secs: u64) -> LeaseOwner {
        let me = Identity::of_this_process();
        let nonce = Uuid::new_v4().simple().to_string();
        let id = OwnerId {
            host: hostname(),
            pid: std::process::id(),
            start: me.start,
            pid_ns: me.pid_ns,
            boot_id: me.boot_id,
        }
        .render(&nonce[..8]);
        LeaseOwner { id, lease_secs }
    }

    /// This process's replica name, `host:pid`: the part of its owner id that stays the same for the
    /// whole life of the process (the nonce changes with every run). See [`replica_of`].
    pub fn this_replica() -> String {
        replica_name(&hostname().replace(':', "_"), std::process::id())
    }

    /// True only when `owner` provably names a process that no longer exists: same boot, same pid
    /// namespace, a /proc that shows this namespace in full, and the pid is gone or now belongs to a
    /// process started at another time. Everything else (old-format ids, other hosts or namespaces,
    /// unreadable /proc) is false, so the lease runs out instead.
    pub fn is_dead_local(owner: &str) -> bool {
        let Some(owner) = OwnerId::parse(owner) else {
            return false;
        };
        judge(&owner, &Identity::of_this_process(), probe_proc)
    }
}

/// The replica that holds (or held) a lease: `host:pid` from an owner id, or `None` for an id this
/// version cannot read. Short and stable per process, so `/metrics` and `status` can tell replicas apart
/// without the boot id, namespace and start time that only the dead-owner proof needs. On Kubernetes the
/// host is the pod name (every pod's pid is often 1); on one host the pid tells processes apart.
pub fn replica_of(owner: &str) -> Option<String> {
    if let Some(id) = OwnerId::parse(owner) {
        return Some(replica_name(&id.host, id.pid));
    }
    // The older `host:pid:nonce` ids still name a replica, though they can never be judged dead.
    match owner.split(':').collect::<Vec<_>>().as_slice() {
        [host, pid, _nonce] if !host.is_empty() && pid.parse::<u32>().is_ok() => {
            Some(replica_name(host, pid.parse().ok()?))
        }
        _ => None,
    }
}

fn replica_name(host: &str, pid: u32) -> String {
    format!("{host}:{pid}")
}

/// The parts of an owner id that identify a process.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnerId {
    /// For people reading the table; not part of the proof.
    host: String,
    pid: u32,
    start: Option<u64>,
    pid_ns: Option<u64>,
    boot_id: Option<String>,
}

impl OwnerId {
    fn render(&self, nonce: &str) -> String {
        fn part<T: ToString>(value: &Option<T>) -> String {
            value
                .as_ref()
                .map_or_else(|| UNKNOWN.to_string(), T::to_string)
        }
        // Host names cannot contain ':', and none of the other parts can either.
        format!(
            "{FORMAT}:{}:{}:{}:{}:{}:{nonce}",
            self.host.replace(':', "_"),
            self.pid,
            part(&self.start),
            part(&self.pid_ns),
            part(&self.boot_id),
        )
    }

    fn parse(text: &str) -> Option<OwnerId> {
        let parts: Vec<&str> = text.split(':').collect();
        let [format, host, pid, start, pid_ns, boot_id, _nonce] = parts.as_slice() else {
            return None;
        };
        if *format != FORMAT {
            return None;
        }
        fn known<T: std::str::FromStr>(text: &str) -> Option<Option<T>> {
            if text == UNKNOWN {
                Some(None)
            } else {
                text.parse().ok().map(Some)
            }
        }
        let boot_id = match *boot_id {
            UNKNOWN => None,
            id if !id.is_empty() => Some(id.to_string()),
            _ => return None,
        };
        Some(OwnerId {
            host: host.to_string(),
            pid: pid.parse().ok()?,
            start: known(start)?,
            pid_ns: known(pid_ns)?,
            boot_id,
        })
    }
}

/// What this process knows about itself and about the /proc it sees.
#[derive(Clone, Debug)]
struct Identity {
    boot_id: Option<String>,
    pid_ns: Option<u64>,
    start: Option<u64>,
    /// /proc belongs to our pid namespace and hides no process: a missing `/proc/<pid>` means "gone".
    proc_shows_all: bool,
}

impl Identity {
    fn of_this_process() -> Identity {
        let pid = std::process::id();
        let proc_is_ours = std::fs::read_link("/proc/self")
            .ok()
            .and_then(|target| target.to_str().and_then(|t| t.parse::<u32>().ok()))
            == Some(pid);
        Identity {
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty() && !id.contains(':')),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .and_then(|target| target.to_str().and_then(parse_ns_link)),
            start: std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_start_time(&stat)),
            proc_shows_all: proc_is_ours && !proc_hides_pids(),
        }
    }
}

/// What /proc says about one pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcState {
    /// `/proc/<pid>` does not exist.
    Gone,
    /// It exists; the start time when readable.
    Running(Option<u64>),
    /// /proc could not answer (permissions, I/O): no conclusion.
    Unknown,
}

fn probe_proc(pid: u32) -> ProcState {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => ProcState::Running(parse_start_time(&stat)),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            // The stat file can vanish between a process's exit and its directory's; ask for the directory.
            if Path::new(&format!("/proc/{pid}")).exists() {
                ProcState::Running(None)
            } else {
                ProcState::Gone
            }
        }
        Err(_) => ProcState::Unknown,
    }
}

fn judge(owner: &OwnerId, me: &Identity, probe: impl Fn(u32) -> ProcState) -> bool {
    if !me.proc_shows_all {
        return false;
    }
    let same_boot = matches!((&owner.boot_id, &me.boot_id), (Some(a), Some(b)) if a == b);
    let same_ns = matches!((owner.pid_ns, me.pid_ns), (Some(a), Some(b)) if a == b);
    let Some(owner_start) = owner.start else {
        return false;
    };
    if !same_boot || !same_ns {
        return false;
    }
    match probe(owner.pid) {
        ProcState::Gone => true,
        // The pid was reused by a process started at another moment: the owner is gone.
        ProcState::Running(Some(start)) => start != owner_start,
        ProcState::Running(None) | ProcState::Unknown => false,
    }
}

/// `pid:[4026531836]` → 4026531836.
fn parse_ns_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Field 22 of `/proc/<pid>/stat`, the start time in clock ticks after boot. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name, so field 22 is the 20th.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// True when /proc is mounted with `hidepid` (other users' processes hidden or unreadable) or
/// `subset=pid`, or when that cannot be told.
fn proc_hides_pids() -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return true;
    };
    let mut seen = false;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, mount_point, fstype, options, ..] = fields.as_slice() else {
            continue;
        };
        if *mount_point != "/proc" || *fstype != "proc" {
            continue;
        }
        seen = true;
        // The last mount on /proc is the one visible; judge by it.
        let hides = options
            .split(',')
            .any(|option| match option.split_once('=') {
                Some(("hidepid", value)) => !matches!(value, "0" | "off"),
                Some(("subset", _)) => true,
                _ => false,
            });
        if hides {
            return true;
        }
    }
    !seen
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "7a4964e4-1278-4752-aca7-70a2988b6abb";

    fn me() -> Identity {
        Identity {
            boot_id: Some(BOOT.into()),
            pid_ns: Some(4026531836),
            start: Some(1000),
            proc_shows_all: true,
        }
    }

    fn owner() -> OwnerId {
        OwnerId {
            host: "box".into(),
            pid: 4242,
            start: Some(5000),
            pid_ns: Some(4026531836),
            boot_id: Some(BOOT.into()),
        }
    }

    fn gone(_: u32) -> ProcState {
        ProcState::Gone
    }

    #[test]
    fn ids_round_trip_with_unknown_parts() {
        let full = owner();
        assert_eq!(OwnerId::parse(&full.render("abcd1234")), Some(full));
        let partial = OwnerId {
            start: None,
            pid_ns: None,
            boot_id: None,
            ..owner()
        };
        assert_eq!(OwnerId::parse(&partial.render("abcd1234")), Some(partial));
    }

    #[test]
    fn same_namespace_and_a_gone_pid_is_dead() {
        assert!(judge(&owner(), &me(), gone));
    }

    #[test]
    fn a_reused_pid_is_dead_and_the_same_start_is_alive() {
        assert!(judge(&owner(), &me(), |_| ProcState::Running(Some(7777))));
        assert!(!judge(&owner(), &me(), |_| ProcState::Running(Some(5000))));
        assert!(!judge(&owner(), &me(), |_| ProcState::Running(None)));
        assert!(!judge(&owner(), &me(), |_| ProcState::Unknown));
    }

    #[test]
    fn another_pid_namespace_is_not_dead() {
        let other = OwnerId {
            pid_ns: Some(4026532999),
            ..owner()
        };
        assert!(!judge(&other, &me(), gone));
    }

    #[test]
    fn another_boot_is_not_dead() {
        let other = OwnerId {
            boot_id: Some("00000000-0000-0000-0000-000000000000".into()),
            ..owner()
        };
        assert!(!judge(&other, &me(), gone));
    }

    #[test]
    fn unknown_parts_on_either_side_are_not_dead() {
        let blind = OwnerId {
            start: None,
            ..owner()
        };
        assert!(!judge(&blind, &me(), gone));
        let no_ns = Identity {
            pid_ns: None,
            ..me()
        };
        assert!(!judge(&owner(), &no_ns, gone));
        let hidden = Identity {
            proc_shows_all: false,
            ..me()
        };
        assert!(!judge(&owner(), &hidden, gone));
    }

    #[test]
    fn old_format_and_garbage_are_not_dead() {
        for text in [
            "box:4242:abcd1234",
            "",
            "garbage",
            "rc2:box:notapid:1:2:3:n",
            "rc2:box:1:2:3",
            "rc9:box:4242:5000:4026531836:boot:n",
        ] {
            assert!(!LeaseOwner::is_dead_local(text), "{text:?}");
        }
    }

    #[test]
    fn replica_is_host_and_pid() {
        assert_eq!(
            replica_of(&owner().render("abcd1234")).as_deref(),
            Some("box:4242")
        );
        assert_eq!(replica_of("box:4242:abcd1234").as_deref(), Some("box:4242"));
        for text in ["", "garbage", "rc2:box:1:2:3", "box:notapid:n"] {
            assert_eq!(replica_of(text), None, "{text:?}");
        }
        let ours = LeaseOwner::for_this_process(60).id;
        assert_eq!(replica_of(&ours), Some(LeaseOwner::this_replica()));
    }

    #[test]
    fn stat_and_ns_parsing() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1234 56";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_ns_link("pid:[4026531836]"), Some(4026531836));
        assert_eq!(parse_ns_link("net:[4026531836]"), None);
    }

    /// Against the real /proc: a child that exited and was reaped is dead, a running one and this process
    /// are not. Skipped where /proc cannot prove anything (no /proc, hidepid).
    #[test]
    fn real_processes() {
        let here = Identity::of_this_process();
        if !here.proc_shows_all || here.boot_id.is_none() || here.pid_ns.is_none() {
            eprintln!("skipped: this /proc cannot prove a process gone");
            return;
        }
        let ours = LeaseOwner::for_this_process(60).id;
        assert!(!LeaseOwner::is_dead_local(&ours), "{ours}");

        let mut running = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let live = id_of(running.id(), &here);
        assert!(!LeaseOwner::is_dead_local(&live), "{live}");
        running.kill().expect("kill sleep");
        running.wait().expect("reap sleep");
        assert!(LeaseOwner::is_dead_local(&live), "{live}");
    }

    fn id_of(pid: u32, here: &Identity) -> String {
        OwnerId {
            host: hostname(),
            pid,
            start: std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_start_time(&stat)),
            pid_ns: here.pid_ns,
            boot_id: here.boot_id.clone(),
        }
        .render("abcd1234")
    }
}
