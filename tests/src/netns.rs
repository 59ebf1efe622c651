//! Three network namespaces for a weak-network test: the phone's, the server's and the link's
//! between them (see `weaklink`). Created with `ip` (iproute2) by the test itself and removed
//! when the [`Testbed`] is dropped, also when the test fails; namespaces left behind by a test
//! process that was killed are removed by the next one.
//!
//! ```text
//!  phone ns                      link ns                         server ns
//!  vx0 10.78.0.2 ── VXLAN ── d0 10.77.1.2 ═ veth ═ 10.77.1.1 [emulator] 10.77.2.1 ═ veth ═ 10.77.2.2 s0 ── VXLAN ── vx0 10.78.0.1
//! ```
//!
//! The addresses exist only inside these namespaces, so parallel tests do not collide and
//! nothing reaches any other network.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The server's address as the phone reaches it, through the emulated link.
pub const SERVER_IP: &str = "10.78.0.1";
/// Where the phone's and the server's VXLAN packets meet the emulator.
pub const LINK_DEVICE_SIDE: &str = "10.77.1.1:4789";
pub const LINK_SERVER_SIDE: &str = "10.77.2.1:4789";
pub const DEVICE_UNDERLAY: &str = "10.77.1.2:4789";
pub const SERVER_UNDERLAY: &str = "10.77.2.2:4789";

const PREFIX: &str = "chiefsync-weaknet-";

/// The three namespaces; dropping it deletes them (and the interfaces inside).
#[derive(Debug)]
pub struct Testbed {
    pub device: String,
    pub link: String,
    pub server: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Deletes namespaces of earlier runs whose process is gone.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

impl Testbed {
    /// Builds the namespaces and interfaces. `Err` says why this machine cannot (no iproute2,
    /// no permission for namespaces, no VXLAN in the kernel): the caller skips the test.
    pub fn create() -> Result<Self, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        remove_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = |role: &str| format!("{PREFIX}{}-{n}-{role}", std::process::id());
        let bed = Testbed {
            device: name("phone"),
            link: name("link"),
            server: name("server"),
        };
        // On any failure `bed` is dropped, which deletes whatever was made.
        for ns in [&bed.device, &bed.link, &bed.server] {
            ip(&["netns", "add", ns])
                .map_err(|e| format!("cannot create a network namespace: {e}"))?;
        }
        bed.wire()?;
        Ok(bed)
    }

    fn wire(&self) -> Result<(), String> {
        let (d, l, s) = (
            self.device.as_str(),
            self.link.as_str(),
            self.server.as_str(),
        );
        for ns in [d, l, s] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "link", "add", "d0", "netns", d, "type", "veth", "peer", "name", "ld", "netns", l,
        ])?;
        ip(&[
            "link", "add", "s0", "netns", s, "type", "veth", "peer", "name", "ls", "netns", l,
        ])?;
        for (ns, dev, addr) in [
            (d, "d0", "10.77.1.2/24"),
            (l, "ld", "10.77.1.1/24"),
            (l, "ls", "10.77.2.1/24"),
            (s, "s0", "10.77.2.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        for (ns, dev, local, remote, overlay) in [
            (d, "d0", "10.77.1.2", "10.77.1.1", "10.78.0.2/24"),
            (s, "s0", "10.77.2.2", "10.77.2.1", "10.78.0.1/24"),
        ] {
            ip(&[
                "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "78", "local", local,
                "remote", remote, "dstport", "4789", "dev", dev,
            ])
            .map_err(|e| format!("the kernel offers no VXLAN for the emulated link: {e}"))?;
            ip(&["-n", ns, "addr", "add", overlay, "dev", "vx0"])?;
            ip(&["-n", ns, "link", "set", "vx0", "up"])?;
        }
        Ok(())
    }

    /// `program` run inside namespace `ns` (one of this testbed's).
    pub fn command(&self, ns: &str, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for ns in [&self.device, &self.link, &self.server] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
